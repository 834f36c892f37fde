"""What the permission matrix expects, written as data (not read from the code it checks).

- `NEEDS`: every API route (method, canonical path) -> the right it needs, `<resource>:read|write`.
  The resource is the reference's section the endpoint belongs to (Sigfox API v2, section 3 of the
  behaviour reference): a GET reads, anything else writes. Where an endpoint acts on another
  resource than its path's first word, the row says so: a device type's or a contract's devices
  (disengage, bulk restart, the contract's device list) are `devices`; message history is
  `messages`; undelivered callbacks are `callbacks`; the profiles a group offers are `groups`
  (every profile can read its groups), and so are the geolocation payload formats it offers and the
  public coverage tiles; an
  operator is a group of type 0 (SO), read and updated as that group (`groups`); a device's
  certificates are `devices`, its consumption (counts of its messages and downlinks) `messages`,
  as its message metric is; coverage predictions (even by POST) read the network, which any profile may
  (`groups:read`, as every profile reads its groups). A slash-less alias of a collection route
  (`/v2/devices` for `/v2/devices/`) needs what the collection route needs.
- `OPERATOR_ONLY`: the resources whose rights take effect only for callers of an operator group
  (type 0, SO): base stations. A caller of any other group is refused (403) whatever its profiles.
- `PROFILE_RIGHTS`: what each predefined profile grants (README, "Profiles and rights").
- `SUCCESS`: the status an allowed request answers: the reference's OpenAPI document (the 2xx of each
  operation), and ours for the routes the reference lacks (contract writes, bulk delete).

A route in the application's route table without a row in `NEEDS` fails the matrix (and so does a
row whose route is gone).
"""
from __future__ import annotations

PUBLIC = "public"

NEEDS: dict[tuple[str, str], str] = {
    ("GET", "/v2/openapi.json"): PUBLIC,
    # groups
    ("GET", "/v2/groups/"): "groups:read",
    ("POST", "/v2/groups/"): "groups:write",
    ("GET", "/v2/groups/{id}"): "groups:read",
    ("PUT", "/v2/groups/{id}"): "groups:write",
    ("DELETE", "/v2/groups/{id}"): "groups:write",
    ("GET", "/v2/groups/{id}/callbacks-not-delivered"): "callbacks:read",
    ("GET", "/v2/groups/{id}/geoloc-payloads"): "groups:read",
    ("GET", "/v2/operators/"): "groups:read",  # ours: the reference cannot list operators
    ("GET", "/v2/operators/{id}"): "groups:read",
    ("PUT", "/v2/operators/{id}"): "groups:write",
    ("GET", "/v2/profiles/"): "groups:read",
    # the public coverage: any API user (every profile reads its groups), whatever its group
    ("GET", "/v2/tiles/public-coverage"): "groups:read",
    ("GET", "/v2/tiles/public-coverage/{z}/{x}/{y}.png"): "groups:read",
    ("GET", "/v2/tiles/public-coverage/kmz/tiles.kmz"): "groups:read",
    ("GET", "/v2/profiles/{id}"): "groups:read",
    # users and API users
    ("GET", "/v2/users/"): "users:read",
    ("POST", "/v2/users/"): "users:write",
    ("GET", "/v2/users/{id}"): "users:read",
    ("PUT", "/v2/users/{id}"): "users:write",
    ("DELETE", "/v2/users/{id}"): "users:write",
    ("PUT", "/v2/users/{id}/profiles"): "users:write",
    ("DELETE", "/v2/users/{id}/profiles/{profileId}"): "users:write",
    ("GET", "/v2/api-users/"): "api-users:read",
    ("POST", "/v2/api-users/"): "api-users:write",
    ("GET", "/v2/api-users/{id}"): "api-users:read",
    ("PUT", "/v2/api-users/{id}"): "api-users:write",
    ("DELETE", "/v2/api-users/{id}"): "api-users:write",
    ("PUT", "/v2/api-users/{id}/profiles"): "api-users:write",
    ("DELETE", "/v2/api-users/{id}/profiles/{profileId}"): "api-users:write",
    ("PUT", "/v2/api-users/{id}/renew-credential"): "api-users:write",
    # contracts
    ("GET", "/v2/contract-infos/"): "contracts:read",
    ("POST", "/v2/contract-infos/"): "contracts:write",
    ("GET", "/v2/contract-infos/{id}"): "contracts:read",
    ("PUT", "/v2/contract-infos/{id}"): "contracts:write",
    ("DELETE", "/v2/contract-infos/{id}"): "contracts:write",
    ("GET", "/v2/contract-infos/{id}/devices"): "devices:read",
    ("POST", "/v2/contract-infos/{id}/bulk/restart"): "devices:write",
    ("GET", "/v2/contract-infos/bulk/restart/{jobId}"): "devices:read",
    # device types and their callbacks
    ("GET", "/v2/device-types/"): "device-types:read",
    ("POST", "/v2/device-types/"): "device-types:write",
    ("GET", "/v2/device-types/{id}"): "device-types:read",
    ("PUT", "/v2/device-types/{id}"): "device-types:write",
    ("DELETE", "/v2/device-types/{id}"): "device-types:write",
    ("PUT", "/v2/device-types/{id}/disengage"): "devices:write",
    ("POST", "/v2/device-types/{id}/bulk/restart"): "devices:write",
    ("GET", "/v2/device-types/bulk/restart/{jobId}"): "devices:read",
    ("GET", "/v2/device-types/{id}/messages"): "messages:read",
    ("GET", "/v2/device-types/{id}/callbacks-not-delivered"): "callbacks:read",
    ("GET", "/v2/device-types/{id}/callbacks"): "callbacks:read",
    ("POST", "/v2/device-types/{id}/callbacks"): "callbacks:write",
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}"): "callbacks:write",
    ("DELETE", "/v2/device-types/{id}/callbacks/{callbackId}"): "callbacks:write",
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/enable"): "callbacks:write",
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/downlink"): "callbacks:write",
    ("GET", "/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered"): "callbacks:read",
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/test"): "callbacks:write",
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay"): "callbacks:write",
    # devices
    ("GET", "/v2/devices/"): "devices:read",
    ("POST", "/v2/devices/"): "devices:write",
    ("GET", "/v2/devices/{id}"): "devices:read",
    ("PUT", "/v2/devices/{id}"): "devices:write",
    ("DELETE", "/v2/devices/{id}"): "devices:write",
    ("POST", "/v2/devices/{id}/disengage"): "devices:write",
    ("PUT", "/v2/devices/{id}/unsubscribe"): "devices:write",
    ("GET", "/v2/devices/{id}/messages"): "messages:read",
    ("GET", "/v2/devices/{id}/events"): "messages:read",  # ours: the device's event history, as messages
    ("GET", "/v2/devices/count"): "devices:read",  # ours: the console's "shown / total"
    ("GET", "/v2/deleted-devices/"): "devices:read",  # ours: the console's deleted-devices list
    ("GET", "/v2/devices/{id}/messages/metric"): "messages:read",
    ("GET", "/v2/devices/{id}/locations"): "messages:read",
    ("GET", "/v2/devices/{id}/callbacks-not-delivered"): "callbacks:read",
    ("GET", "/v2/devices/{id}/certificate/modem"): "devices:read",
    ("GET", "/v2/devices/{id}/certificate/product"): "devices:read",
    ("GET", "/v2/devices/{id}/product-certificate"): "devices:read",
    ("GET", "/v2/devices/{id}/consumption/{year}"): "messages:read",
    ("GET", "/v2/devices/{id}/consumption/{year}/{month}"): "messages:read",
    # bulk device operations and their jobs
    ("POST", "/v2/devices/bulk"): "devices:write",
    ("PUT", "/v2/devices/bulk"): "devices:write",
    ("GET", "/v2/devices/bulk/{jobId}"): "devices:read",
    ("POST", "/v2/devices/bulk/transfer"): "devices:write",
    ("POST", "/v2/devices/bulk/replace"): "devices:write",
    ("POST", "/v2/devices/bulk/restart"): "devices:write",
    ("GET", "/v2/devices/bulk/restart/{jobId}"): "devices:read",
    ("POST", "/v2/devices/bulk/suspend"): "devices:write",
    ("GET", "/v2/devices/bulk/suspend/{jobId}"): "devices:read",
    ("POST", "/v2/devices/bulk/resume"): "devices:write",
    ("GET", "/v2/devices/bulk/resume/{jobId}"): "devices:read",
    ("POST", "/v2/devices/bulk/unsubscribe"): "devices:write",
    ("GET", "/v2/devices/bulk/unsubscribe/{jobId}"): "devices:read",
    ("POST", "/v2/devices/bulk/delete"): "devices:write",
    ("GET", "/v2/devices/bulk/delete/{jobId}"): "devices:read",
    # the operator's base stations (ours: the reference has none)
    ("GET", "/v2/base-stations/"): "base-stations:read",
    ("POST", "/v2/base-stations/"): "base-stations:write",
    ("GET", "/v2/base-stations/{id}"): "base-stations:read",
    ("PUT", "/v2/base-stations/{id}"): "base-stations:write",
    ("DELETE", "/v2/base-stations/{id}"): "base-stations:write",
    # coverage: predictions of the network are read by any API user (every profile reads its groups),
    # whatever the method (a POST carries many locations, or starts a job that only computes)
    ("GET", "/v2/coverages/global/predictions"): "groups:read",
    ("POST", "/v2/coverages/global/predictions"): "groups:read",
    ("POST", "/v2/coverages/global/predictions/bulk"): "groups:read",
    ("GET", "/v2/coverages/global/predictions/bulk/{jobId}"): "groups:read",
    ("GET", "/v2/coverages/operators/redundancy"): "groups:read",
}
OPERATOR_ONLY = frozenset({"base-stations"})


def resource_of(need: str) -> str:
    """The resource of a right (`devices` of `devices:read`)."""
    return need.partition(":")[0]


def _rights(*resources: str, write: bool = False) -> frozenset[str]:
    return frozenset(f"{r}:{a}" for r in resources for a in (("read", "write") if write else ("read",)))


_VIEWER = _rights("groups", "contracts")  # every profile sees its groups and their contracts
_DEVICE = ("device-types", "devices", "callbacks", "messages")
_USER = ("users", "api-users")
PROFILE_RIGHTS: dict[str, frozenset[str]] = {
    "DEVICE MANAGER [R]": _VIEWER | _rights(*_DEVICE),
    "DEVICE MANAGER [W]": _VIEWER | _rights(*_DEVICE, write=True),
    "USER MANAGER [R]": _VIEWER | _rights(*_USER),
    "USER MANAGER [W]": _VIEWER | _rights(*_USER, write=True) | {"groups:write"},
    "CUSTOMER [R]": _VIEWER | _rights(*_DEVICE, *_USER),
    "CUSTOMER [W]": _VIEWER | _rights(*_DEVICE, *_USER, write=True) | {"groups:write"},
    "ADMIN [W]": _VIEWER | _rights(*_DEVICE, *_USER, "contracts", "base-stations", write=True) | {"groups:write"},
    "BASE STATION MANAGER [R]": _VIEWER | _rights("base-stations"),
    "BASE STATION MANAGER [W]": _VIEWER | _rights("base-stations", write=True),
}

# The reference's 2xx per operation; the routes it does not have are ours (marked).
SUCCESS: dict[tuple[str, str], int] = {
    ("POST", "/v2/groups/"): 201, ("PUT", "/v2/groups/{id}"): 204, ("DELETE", "/v2/groups/{id}"): 204,
    ("PUT", "/v2/operators/{id}"): 204,
    ("POST", "/v2/users/"): 201, ("PUT", "/v2/users/{id}"): 204, ("DELETE", "/v2/users/{id}"): 204,
    ("PUT", "/v2/users/{id}/profiles"): 204, ("DELETE", "/v2/users/{id}/profiles/{profileId}"): 204,
    ("POST", "/v2/api-users/"): 201, ("PUT", "/v2/api-users/{id}"): 204, ("DELETE", "/v2/api-users/{id}"): 204,
    ("PUT", "/v2/api-users/{id}/profiles"): 204, ("DELETE", "/v2/api-users/{id}/profiles/{profileId}"): 204,
    ("PUT", "/v2/api-users/{id}/renew-credential"): 200,
    ("POST", "/v2/contract-infos/"): 201,  # ours
    ("PUT", "/v2/contract-infos/{id}"): 204,  # ours
    ("DELETE", "/v2/contract-infos/{id}"): 204,  # ours
    ("POST", "/v2/contract-infos/{id}/bulk/restart"): 201,
    ("POST", "/v2/device-types/"): 201, ("PUT", "/v2/device-types/{id}"): 204,
    ("DELETE", "/v2/device-types/{id}"): 204, ("PUT", "/v2/device-types/{id}/disengage"): 204,
    ("POST", "/v2/device-types/{id}/bulk/restart"): 201,
    ("POST", "/v2/device-types/{id}/callbacks"): 201,
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}"): 204,
    ("DELETE", "/v2/device-types/{id}/callbacks/{callbackId}"): 204,
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/enable"): 204,
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/downlink"): 204,
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/test"): 200,
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay"): 200,
    ("POST", "/v2/devices/"): 201, ("PUT", "/v2/devices/{id}"): 204, ("DELETE", "/v2/devices/{id}"): 204,
    ("POST", "/v2/devices/{id}/disengage"): 204, ("PUT", "/v2/devices/{id}/unsubscribe"): 204,
    ("POST", "/v2/devices/bulk"): 200, ("PUT", "/v2/devices/bulk"): 201,
    ("POST", "/v2/devices/bulk/transfer"): 200, ("POST", "/v2/devices/bulk/replace"): 200,
    ("POST", "/v2/devices/bulk/restart"): 201, ("POST", "/v2/devices/bulk/suspend"): 201,
    ("POST", "/v2/devices/bulk/resume"): 201, ("POST", "/v2/devices/bulk/unsubscribe"): 201,
    ("POST", "/v2/devices/bulk/delete"): 201,  # ours ("Delete series")
    ("POST", "/v2/base-stations/"): 201, ("PUT", "/v2/base-stations/{id}"): 204,  # ours
    ("DELETE", "/v2/base-stations/{id}"): 204,  # ours
    ("POST", "/v2/coverages/global/predictions"): 200, ("POST", "/v2/coverages/global/predictions/bulk"): 201,
}


def success(method: str, path: str) -> int:
    """What an allowed request answers: 200 for every read, else the table above."""
    return 200 if method == "GET" else SUCCESS[(method, path)]
