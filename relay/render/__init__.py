"""Rendering: an event to a message through a sandboxed Jinja template (`renderer`), with the
filters templates use (`filters`), escaping for event data (`escaping`, `mrkdwn`), humanized
values (`humanize`), Slack's Block Kit limits (`blockkit`) and the safe default message
(`fallback`). Pure; the built-in templates are in `templates/`."""
