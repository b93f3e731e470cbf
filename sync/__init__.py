"""Talking to the library system: the SIP2 codec and client, the outbox worker, the demo ILS."""
