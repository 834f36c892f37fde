"""Data contracts: the record of every Kafka topic (one module each: its typed definition, builders,
encoder and decoder), topic names, SQL migrations, the OpenAPI document. Imports nothing of ours."""
