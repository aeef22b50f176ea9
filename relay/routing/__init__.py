"""Routing: the YAML rules compiled into matchers and the pure decision of where an event goes
(`router`), and whether a named time interval (quiet hours) is active (`schedule`)."""
