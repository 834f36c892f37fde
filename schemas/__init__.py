"""Data contracts: Kafka topic names and record shapes, frame validation, SQL migrations."""
