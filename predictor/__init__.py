"""KServe predictor: the multi-level attention classifier over quantised VGGish
embeddings, with adaptive batching."""
