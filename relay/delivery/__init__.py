"""Delivery: putting rendered messages into chats. The `worker` claims due messages and sends
them through one sender per destination (`destinations` says which: `slack`, `console`),
records what came of each by the pure `policy` (sent, retried later, dead letter), and with
replicas runs each send within its `heartbeat` fence."""
