"""Gateway side and the stream engine: validation, dedup, windows, sequence numbers, keep-alive."""
