"""The simulated radio network (`network`, with the opt-in link-budget radio of `radio_model`) and
simulated base stations on the downlink side (`stations`).

The demo, the bench and the tests use it; ingest does not."""
