"""The status of a callback attempt that got no HTTP status.

A timeout, a connection, TLS or DNS failure, a destination the rule refuses, a
template that cannot be rendered: Sigfox records such an attempt with status
600, and so do the router (render failures) and the delivery workers.
"""
from __future__ import annotations

NON_HTTP_STATUS = 600
