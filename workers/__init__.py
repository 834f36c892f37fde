"""Callback delivery: HTTP, batched HTTP, e-mail; retries; bulkheads; BIDIR downlinks."""
