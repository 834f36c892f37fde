"""The simulated radio network (`network`) and simulated base stations on the downlink side (`stations`).

The demo, the bench and the tests use it; ingest does not."""
