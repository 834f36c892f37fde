"""Out-of-band (service) frame payloads.

Sigfox does not publish the radio layout of service frames, so Backhaul
defines one (documented in the README). The first byte says what follows:

    0x01 STATUS    batt uint16 BE (mV) | temp int16 BE (0.1 degC)                  5 bytes
    0x02 REPEATER  batt uint16 BE (mV) | whitelistDevices | repeatedMsg |
                   unwantedDevices | unwantedMsg | wrongMsg | overRegulMsg           9 bytes
                   (the last six: one byte each, range codes 0..15)
    0x03 KEEPALIVE nothing more (a sign of life: resets the keep-alive only)       1 byte
"""
from __future__ import annotations

REPEATER_FIELDS = ("whitelistDevices", "repeatedMsg", "unwantedDevices", "unwantedMsg", "wrongMsg", "overRegulMsg")


class OobError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"data: {reason}")
        self.code = "data.oob"


def decode_oob(data_hex: str) -> dict:
    """Decode a service frame payload into an event body with a `type`."""
    raw = bytes.fromhex(data_hex)
    if not raw:
        raise OobError("out-of-band frame without payload")
    kind = raw[0]
    if kind == 0x01:
        if len(raw) != 5:
            raise OobError(f"STATUS payload must be 5 bytes, got {len(raw)}")
        return {"type": "STATUS", "batt": int.from_bytes(raw[1:3], "big") / 1000,
                "temp": int.from_bytes(raw[3:5], "big", signed=True) / 10}
    if kind == 0x02:
        if len(raw) != 9:
            raise OobError(f"REPEATER payload must be 9 bytes, got {len(raw)}")
        codes = raw[3:9]
        if any(c > 15 for c in codes):
            raise OobError("REPEATER range codes must be 0..15")
        body = {"type": "REPEATER", "batt": int.from_bytes(raw[1:3], "big") / 1000}
        body.update(zip(REPEATER_FIELDS, codes, strict=False))
        return body
    if kind == 0x03:
        return {"type": "KEEPALIVE"}
    raise OobError(f"unknown out-of-band type 0x{kind:02x}")


def encode_status(batt_v: float, temp_c: float) -> str:
    """The payload of a STATUS frame (used by the simulator and tests)."""
    return (b"\x01" + int(round(batt_v * 1000)).to_bytes(2, "big")
            + int(round(temp_c * 10)).to_bytes(2, "big", signed=True)).hex()
