"""Helpers shared by the tests: real loopback servers, the DHT stand-in, signals, leak scanning."""
