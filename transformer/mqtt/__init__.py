"""The MQTT sink: every event record the DHT gets, on an MQTT bus too, with Home Assistant discovery.

topics.py      topic names and the publishes of one event record (state ON/OFF, event JSON)
queue.py       the sink's own table in the outbox file (staged in the outbox's transactions)
config.py      the frozen config and the broker URL (mqtt://, mqtts://, ws://, wss://, ${VAR})
connection.py  one broker connection: paho-mqtt's thread, awaitable PUBACKs, the last will
sender.py      the background task: status, discovery, the rows in order, levels, backoff
discovery.py   Home Assistant's discovery configs and the clean-up of stale ones
incidents.py   one sound heard by several sources: one incident id, one message
cooldown.py    a source and group's next start kept off the bus for a while after an end
(per-sink metrics: transformer/metrics.py, shared with the DHT leg)
"""
