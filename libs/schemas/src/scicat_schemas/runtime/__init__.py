"""Plumbing every service runs on, so the four services read the same way.

- `logging`: structlog JSON for our code and for the libraries underneath.
- `consumer`: the reliable-consumer loop: ack after the effect is durable, dead-letter bad input
  with its reason, back off and retry on outages without losing the message.
- `dead_letter`: the dead-letter header contract.
- `http`: `/healthz`, `/readyz`, `/metrics` and the FastAPI app every service serves.
- `settings`: the setting models every service nests.
"""
