"""The YAML configuration: strict frozen models, `${VAR}` interpolation, errors that name the path.

`load_config(path)` is the entry point (`loading`); the models are grouped by the part of the
file they describe: `sources`, `destinations` (and the `slack:` settings), `routes` (matching,
conversations, quiet hours) and `model` (the whole file); `values` holds what they share.
"""

from relay.config.destinations import (
    ConsoleDestination,
    Destination,
    DestinationBase,
    DiscordDestination,
    GoogleChatDestination,
    MattermostDestination,
    SlackChannelDestination,
    SlackConfig,
    TeamsDestination,
    WebhookDestination,
)
from relay.config.loading import interpolate, load_config, parse_config, secret_values
from relay.config.model import Config, LoadedConfig, ServerConfig, StoreConfig
from relay.config.routes import (
    Condition,
    DefaultRoute,
    GroupConfig,
    Match,
    RepeatConfig,
    Route,
    ThreadConfig,
    TimeInterval,
    TimeRange,
)
from relay.config.sources import (
    AnchorSource,
    DeckSource,
    GenericSource,
    Source,
    TabstackSource,
)
from relay.config.values import PacingConfig

__all__ = [
    "AnchorSource",
    "Condition",
    "Config",
    "ConsoleDestination",
    "DeckSource",
    "DefaultRoute",
    "Destination",
    "DestinationBase",
    "DiscordDestination",
    "GenericSource",
    "GoogleChatDestination",
    "GroupConfig",
    "LoadedConfig",
    "Match",
    "MattermostDestination",
    "PacingConfig",
    "RepeatConfig",
    "Route",
    "ServerConfig",
    "SlackChannelDestination",
    "SlackConfig",
    "Source",
    "StoreConfig",
    "TabstackSource",
    "TeamsDestination",
    "ThreadConfig",
    "TimeInterval",
    "TimeRange",
    "WebhookDestination",
    "interpolate",
    "load_config",
    "parse_config",
    "secret_values",
]
