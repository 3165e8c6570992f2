"""Shared pieces of the audio anomaly classifier: the contract between the
transformer and the predictor (constants, errors), the official model assets
(download, checksums, synthetic official-format files) and the command line."""
