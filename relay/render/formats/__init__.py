"""Each chat's native format: a rendered message (a card, or Slack's Block Kit) as the payload
that chat takes, with the route's mentions in the chat's own form, within the chat's limits.
One module per chat, all pure; the destination kinds (`relay.delivery.destinations`) know which
chat's format a destination takes."""
