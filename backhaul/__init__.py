"""Backhaul: an open-source backend for a Sigfox-style LPWAN network."""
__version__ = "0.1.0"
