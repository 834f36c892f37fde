"""Callback matching and rendering."""
