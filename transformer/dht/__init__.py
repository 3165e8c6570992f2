"""The whole SIFIS DHT leg: what is posted, how it is kept, how it is sent, what is heard.

records.py        finished records (``transformer.analysis.records``) wrapped as outbox messages
outbox.py         the durable SQLite store of messages not yet acknowledged
outbox_schema.py  the outbox file's tables (pending messages, per-kind counts, dead letters)
dead_letters.py   ``python -m transformer.dht.dead_letters``: list and re-send refused messages
sender.py         the background task that posts the outbox, per topic, with backoff
clients.py        the two transports to the broker (REST, WebSocket)
delivery.py       records a recording's or a live source's events in the outbox; owns the sender
listener.py       the optional subscriber to analysis requests on the broker's WebSocket
topics.py         topic names and the request type (the settings' defaults)
backoff.py        the one retry delay rule (also a monitor source's restarts)
"""
