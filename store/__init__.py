"""Writes the stream to PostgreSQL: messages, receptions, events, callback attempts."""
