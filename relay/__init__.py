"""relay: verified browser-automation events in, rich routed Slack messages out."""

__version__ = "0.1.0"
