"""KServe transformer: audio in, privacy-anonymised VGGish embeddings out to the
predictor, top-k labels and safety anomalies back to the caller."""
