"""The REST API in the shapes of Sigfox API v2, one module per resource.

Each module reads and checks its requests, calls `oss.storage` (the only
place with SQL) and answers in the v2 body shapes.
"""
from oss import openapi
from oss.api import (
                     api_users,
                     base_stations,
                     bulk,
                     callbacks,
                     certificates,
                     consumption,
                     contracts,
                     coverage,
                     device_types,
                     devices,
                     geoloc_payloads,
                     groups,
                     messages,
                     operators,
                     profiles,
                     tiles,
                     undelivered,
                     users,
)

# In the order their routes are added: the bulk paths before /devices/{id}, which would take them.
RESOURCES = (bulk, groups, profiles, users, api_users, contracts, device_types, callbacks, devices, messages,
             undelivered, certificates, consumption, geoloc_payloads, operators, base_stations, coverage,
             tiles, openapi)
