"""A message's `downlinkAnswerStatus`: the downlink its uplink received, and the ACKNOWLEDGE outcome.

The reference's object (`baseStation`, `data`; `plannedPower`, `operator` and
`country` have no source in Backhaul and are left out) with the outcome the
ACKNOWLEDGE callback carries, as extension fields: `infoCode`, `infoMessage`,
`downlinkAck`, `downlinkOverusage`. It is shown for an uplink whose downlink
was granted or decided: `baseStation` is the station chosen to transmit it,
`data` the 8 bytes sent (or to be sent). A grant whose station has not reported
yet shows infoCode 5, PENDING (never sent as an ACKNOWLEDGE). An uplink whose
downlink callback answered `noData` (or 204), or that is still waiting for the
answer, has none: no downlink was answered. The station's `name` comes with
`fields=downlinkAnswerStatus(baseStation(name))`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callback_language.downlink import InfoCode, info_message
from oss.fields import Fields
from oss.shape import compact


def downlink_answer_status(row: Mapping[str, Any] | None, stations: Mapping[str, Mapping[str, Any]],
                           wanted: Fields) -> dict[str, Any] | None:
    """The downlinkAnswerStatus of a message from its `message_downlinks` row (None: it has none)."""
    if row is None:
        return None
    station = row["station"]
    base = None
    if station:
        name = stations.get(station, {}).get("name") if "name" in wanted.get("baseStation", {}) else None
        base = compact({"id": station, "name": name})
    decided = row["info_code"] is not None
    code = row["info_code"] if decided else int(InfoCode.PENDING)
    return compact({
        "baseStation": base, "data": row["data"], "infoCode": code,
        "infoMessage": row["info_message"] if decided else info_message(InfoCode.PENDING),
        "downlinkAck": bool(row["downlink_ack"]), "downlinkOverusage": bool(row["downlink_overusage"]),
    })
