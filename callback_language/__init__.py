"""The callback language: templates, variables, the custom payload grammar, compiled callbacks, the
variables of each record kind (bindings), downlink rendering and info codes, the non-HTTP status.

The router, the delivery workers and the API (validation at save) import it; it imports only the
runtime (`backhaul`) and `schemas`.
"""
