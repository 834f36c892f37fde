"""The downlink side of the callback language: DIRECT templates, ACKNOWLEDGE info codes, downlink routing.

A downlink is exactly 8 bytes, handled as 16 lower-case hex characters
(`check_downlink_hex`; the delivery workers read the BIDIR answer a
customer's server gives with it).

DIRECT template (`downlinkDataString`, byte widths unconfirmed in Sigfox):
- `{tapId}`: station id, 2 bytes (4 hex; a shorter id is left-padded with 0);
- `{rssi}`: received power in whole dBm (rounded to nearest, halves to even),
  2 bytes signed big-endian, two's complement (4 hex; -120 dBm is "ff88");
- `{time}`: epoch seconds, 4 bytes big-endian unsigned (8 hex).
Together 8 bytes; the template may also hold literal hex digits, and the
result must be exactly 16 hex characters. The station and its rssi are those
of the station chosen to transmit (the best heard before the downlink leaves,
`workers.downlink_plan`), `{time}` is the uplink's time.

Timing (`DownlinkTiming`) is counted from the uplink's own time (the station's
time of its first frame), never from when a stage happened to handle it: an
uplink that reaches Backhaul after its answer deadline (CALLBACK) or after its
downlink should have left (DIRECT) gets no downlink, and ACKNOWLEDGE
NETWORK_ERROR says how late it was (`late_uplink`).

Info codes Backhaul never sends in an ACKNOWLEDGE: PENDING is what the API
shows while a granted downlink waits for its station's report (the reference:
"never sent"). TOO_MANY_REQUESTS refuses a downlink whose receive window
overlaps one already granted to the device (`workers.downlink_gate`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from backhaul.settings import Settings
from schemas import device_events
from schemas.device_events import NOT_REPORTED, DeviceEvent, Subject

DOWNLINK_BYTES = 8
DOWNLINK_HEX = 2 * DOWNLINK_BYTES

_HEX = re.compile(r"[0-9a-fA-F]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class DownlinkTiming:
    """When a downlink's steps are due, in epoch ms, from its uplink's time (see the module docstring).

    `answer_s`: the BIDIR answer's deadline; `transmit_s`: the downlink is at its station (the device
    opens its receive window); `lead_s`: it leaves for the station this long before; `listen_s`: how
    long the device listens.
    """

    answer_s: float
    transmit_s: float
    lead_s: float
    listen_s: float

    def answer_by(self, uplink_ms: int) -> int:
        return uplink_ms + round(self.answer_s * 1000)

    def transmit_by(self, uplink_ms: int) -> int:
        return uplink_ms + round(self.transmit_s * 1000)

    def leaves_at(self, uplink_ms: int) -> int:
        """When the downlink leaves for its station (the last reception that can choose it)."""
        return self.transmit_by(uplink_ms) - round(self.lead_s * 1000)

    def listen_ms(self) -> int:
        """How long the device listens: uplinks closer than this open overlapping receive windows."""
        return round(self.listen_s * 1000)


def downlink_timing(settings: Settings) -> DownlinkTiming:
    """The downlink timing the settings give."""
    return DownlinkTiming(settings.downlink_answer_s, settings.downlink_transmit_s, settings.downlink_lead_s,
                          settings.downlink_listen_s)


def late_uplink(timing: DownlinkTiming, mode: Literal["callback", "direct"], uplink_ms: int,
                now_ms: int) -> str | None:
    """Why the uplink came too late for a downlink (the infoMessage of NETWORK_ERROR), or None."""
    due = timing.answer_by(uplink_ms) if mode == "callback" else timing.leaves_at(uplink_ms)
    if now_ms < due:
        return None
    what = "its BIDIR answer was due" if mode == "callback" else "its downlink had to leave for a station"
    return (f"Network error: the uplink reached Backhaul {(now_ms - uplink_ms) / 1000:.1f} s after it was sent, "
            f"{(now_ms - due) / 1000:.1f} s after {what}: no downlink")


class InfoCode(IntEnum):
    """infoCode of the ACKNOWLEDGE callback."""

    ACKED = 0
    NO_ANSWER = 1
    INVALID_PAYLOAD = 2
    OVERRUN_ERROR = 3
    NETWORK_ERROR = 4
    PENDING = 5
    NO_DOWNLINK_CONTRACT = 6
    TOO_MANY_REQUESTS = 7
    INVALID_CONFIGURATION = 8


_INFO_MESSAGES = {
    InfoCode.ACKED: "Acked: the station transmitted the downlink",
    InfoCode.NO_ANSWER: "No answer: the customer's server gave no downlink answer",
    InfoCode.INVALID_PAYLOAD: "Invalid payload: the downlink data given is not valid",
    InfoCode.OVERRUN_ERROR: "Overrun error: the device exceeded its daily downlink quota",
    InfoCode.NETWORK_ERROR: "Network error: the downlink could not be transmitted",
    InfoCode.PENDING: "Pending: the downlink has not been sent yet",
    InfoCode.NO_DOWNLINK_CONTRACT: "No downlink contract: the device's contract does not allow downlinks",
    InfoCode.TOO_MANY_REQUESTS: "Too many requests: the device asked again before its listening time ended",
    InfoCode.INVALID_CONFIGURATION: "Invalid configuration: callback downlink mode but no downlink BIDIR callback",
}


def info_message(code: int) -> str:
    """The infoMessage that goes with an infoCode."""
    try:
        return _INFO_MESSAGES[InfoCode(code)]
    except ValueError:
        raise ValueError(f"infoCode {code!r}: unknown (0..8)") from None


def check_downlink_hex(value: object) -> str | None:
    """Why `value` is not 8 bytes of hex, or None if it is."""
    if not isinstance(value, str):
        return f"downlinkData must be a string of {DOWNLINK_HEX} hex characters, got {type(value).__name__}"
    if not _HEX.fullmatch(value):
        return f"downlinkData {value!r} is not hexadecimal"
    if len(value) != DOWNLINK_HEX:
        return (f"downlinkData must be exactly {DOWNLINK_BYTES} bytes ({DOWNLINK_HEX} hex characters), "
                f"got {len(value)} characters")
    return None


def _tap_id_hex(tap_id: str) -> str:
    if not tap_id or not _HEX.fullmatch(tap_id) or len(tap_id) > 4:
        raise ValueError(f"tapId {tap_id!r}: station id must be 1 to 4 hex characters (2 bytes)")
    return tap_id.lower().rjust(4, "0")


def _rssi_hex(rssi: float) -> str:
    if not math.isfinite(rssi):
        raise ValueError(f"rssi {rssi!r}: must be a finite number of dBm")
    value = round(rssi)
    if not -32768 <= value <= 32767:
        raise ValueError(f"rssi {rssi!r}: does not fit 2 signed bytes")
    return (value & 0xFFFF).to_bytes(2, "big").hex()


def _time_hex(time_s: int) -> str:
    if not 0 <= time_s <= 0xFFFFFFFF:
        raise ValueError(f"time {time_s!r}: does not fit 4 unsigned bytes")
    return int(time_s).to_bytes(4, "big").hex()


def render_direct(downlink_data_string: str, *, tap_id: str, rssi: float, time_s: int) -> str:
    """Fill a DIRECT-mode template; the result is 16 lower-case hex characters.

    Raises ValueError naming the reason (unknown placeholder, value out of
    range, result not hex or not 8 bytes).
    """
    values: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            if name == "tapId":
                values[name] = _tap_id_hex(tap_id)
            elif name == "rssi":
                values[name] = _rssi_hex(rssi)
            elif name == "time":
                values[name] = _time_hex(time_s)
            else:
                raise ValueError(f"downlinkDataString: unknown variable {{{name}}} (known: {{tapId}}, {{rssi}}, {{time}})")
        return values[name]

    result = _PLACEHOLDER.sub(fill, downlink_data_string)
    if not _HEX.fullmatch(result):
        raise ValueError(f"downlinkDataString {downlink_data_string!r} gives {result!r}, which is not hexadecimal")
    if len(result) != DOWNLINK_HEX:
        raise ValueError(f"downlinkDataString {downlink_data_string!r} gives {len(result)} hex characters; "
                         f"a downlink is exactly {DOWNLINK_BYTES} bytes ({DOWNLINK_HEX} hex characters)")
    return result.lower()


DIRECT, CALLBACK, NONE, MANAGED = 0, 1, 2, 3
DOWNLINK_CHANNELS = ("URL", "BATCH_URL")


@dataclass(frozen=True)
class DownlinkRoute:
    """How the downlink an uplink asks for is obtained.

    `mode` "callback": the BIDIR callback `callback_id` answers it; "direct":
    the device type's downlinkDataString; "refused": ACKNOWLEDGE `code`.
    """

    mode: Literal["callback", "direct", "refused"]
    callback_id: str | None = None
    code: InfoCode | None = None
    reason: str | None = None


def downlink_route(device_type: dict[str, Any] | None, callbacks: list[dict[str, Any]]) -> DownlinkRoute:
    """Decide for a device type (a row) and its callbacks (rows).

    CALLBACK mode needs exactly one enabled BIDIR (subtype 1) URL or BATCH_URL
    callback marked as the downlink callback; DIRECT mode needs nothing more
    here (the template is rendered by the caller); NONE and MANAGED refuse with
    INVALID_CONFIGURATION, as does an unknown device type.
    """
    if not device_type:
        return DownlinkRoute("refused", code=InfoCode.INVALID_CONFIGURATION, reason="unknown device type")
    mode = device_type.get("downlink_mode")
    if mode == DIRECT:
        return DownlinkRoute("direct")
    if mode != CALLBACK:
        return DownlinkRoute("refused", code=InfoCode.INVALID_CONFIGURATION,
                             reason=f"Invalid configuration: the device type's downlinkMode {mode} sends no downlink")
    hooks = [cb for cb in callbacks if cb.get("enabled") and cb.get("downlink_hook")
             and cb.get("callback_subtype") == 1 and cb.get("channel", "URL") in DOWNLINK_CHANNELS]
    if len(hooks) != 1:
        return DownlinkRoute("refused", code=InfoCode.INVALID_CONFIGURATION,
                             reason=None if not hooks else
                             "Invalid configuration: more than one downlink BIDIR callback")
    return DownlinkRoute("callback", callback_id=hooks[0]["id"])


def ack_event(device: str, record_id: str, code: InfoCode, *, device_type_id: str | None,
              group_id: str | None, now_ms: int, reason: str | None = None,
              downlink_ack: bool = False, registration_id: int | None = None,
              station: str | None | device_events.Absent = NOT_REPORTED, data: str | None = None,
              uplink_ms: int | None = None) -> DeviceEvent:
    """The ACKNOWLEDGE device event for the downlink an uplink (`record_id`, sent at `uplink_ms`) asked
    for, with the infoMessage of `code` unless `reason` says more (`schemas.device_events.acknowledge`;
    `station`: the station that reported the transmission; `data`: the downlink, when there was one).

    One per uplink: its id is stable, so a replayed decision is stored once.
    """
    return device_events.acknowledge(
        Subject(device, device_type_id, group_id, registration_id), now_ms, message_id=record_id,
        info_code=int(code), info_message=reason or info_message(code), downlink_ack=downlink_ack,
        downlink_overusage=code == InfoCode.OVERRUN_ERROR, station=station, data=data, uplink_ms=uplink_ms)
