"""Conversations: how messages of one task, session or run read as one thread, update in place,
count their repeats, and gather into digests. Pure: the router decides each message's `Step`
(`steps`), the worker turns a step and the messages already posted into a move (`moves`), a
repeated message carries its counter (`repeat`), and a group of events becomes one digest
(`digest`, on the schedule of `grouping`)."""
