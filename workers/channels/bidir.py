"""BIDIR answers: what a customer's server answered a downlink callback, and what that gives.

A BIDIR callback marked as its device type's downlink callback (`downlink` on
the delivery, URL or BATCH_URL) is read on its first attempt only, within
`downlink_answer_s` of the uplink's own time (`workers.channels.http.answer_timeout`
waits no longer); an answer after that, or none, gives ACKNOWLEDGE NO_ANSWER, one
that is not valid INVALID_PAYLOAD, `noData` (or 204) nothing, and downlink data a
downlink for the stations once the contract, receive window and quota gate lets
it through.

The attempt's `info` (the message's cbStatus) says what became of the downlink:
"downlink failed (NO_ANSWER): ..." for an answer that could not be used (a
timeout, an error status, too late, not valid), "downlink refused (...)" when the
gate refused it, "downlink granted", "no downlink (noData)". Later calls (the
failed callback retried as a data callback, or replayed from the undelivered
list) can give no downlink, and say so when they succeed: a call that succeeds
after the deadline never reads as a downlink delivered.

BIDIR answer (Sigfox contract): HTTP 200 with a JSON object holding, for the
device, `{"downlinkData": "<16 hex>"}` or `{"noData": true}`; or HTTP 204 for
no downlink. Entries for other devices are ignored (batch answers carry one
per device). Device id keys match case-insensitively and ignoring leading
zeros ("00AB12" is "ab12"). The Content-Type is not checked (unconfirmed in
Sigfox; we accept any as long as the body is that JSON object).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from callback_language.downlink import InfoCode, check_downlink_hex, downlink_timing
from schemas.downlinks import uplink_time_ms
from workers.attempt import Outcome
from workers.channels.base import Answered, Context, Delivery

# What a later attempt of a downlink callback says in cbStatus when it succeeds.
NOT_A_DOWNLINK = "data delivered; no downlink: only the first call of a downlink callback is read for one"


@dataclass(frozen=True)
class DownlinkAnswer:
    """What a BIDIR receiver answered for one device."""

    kind: Literal["data", "no_data", "invalid"]
    data_hex: str | None = None
    reason: str | None = None


def _device_key(device_id: str) -> str:
    return device_id.strip().lower().lstrip("0")  # pragma: no mutate (both sides: any case; no "X" in hex)


def _same_device(a: str, b: str) -> bool:
    return _device_key(a) == _device_key(b)


def parse_bidir_answer(device_id: str, status: int, content_type: str | None, body: bytes) -> DownlinkAnswer:
    """Read a BIDIR receiver's answer for `device_id` (see the module docstring)."""
    if status == 204:
        return DownlinkAnswer("no_data")
    if status != 200:
        return DownlinkAnswer("invalid", reason=f"HTTP status {status}: expected 200 with a JSON answer or 204")
    if not body.strip():
        return DownlinkAnswer("invalid", reason="HTTP 200 with an empty body: answer 204 for no downlink")
    try:
        doc = json.loads(body.decode("utf-8-sig"))  # pragma: no mutate (codec names ignore case)
    except (UnicodeDecodeError, ValueError) as exc:
        return DownlinkAnswer("invalid", reason=f"body is not JSON (Content-Type {content_type!r}): {exc}")
    if not isinstance(doc, dict):
        return DownlinkAnswer("invalid", reason=f"body must be a JSON object keyed by device id, got {type(doc).__name__}")
    matches = [value for key, value in doc.items() if _same_device(key, device_id)]
    if not matches:
        return DownlinkAnswer("invalid", reason=f"no entry for device {device_id} in the answer")
    if len(matches) > 1:
        return DownlinkAnswer("invalid", reason=f"more than one entry for device {device_id} in the answer")
    entry = matches[0]
    if not isinstance(entry, dict):
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} must be a JSON object")
    has_data = "downlinkData" in entry
    no_data = entry.get("noData") is True
    if has_data and no_data:
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} has both downlinkData and noData")
    if no_data:
        return DownlinkAnswer("no_data")
    if not has_data:
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} has neither downlinkData nor noData: true")
    problem = check_downlink_hex(entry["downlinkData"])
    if problem:
        return DownlinkAnswer("invalid", reason=problem)
    return DownlinkAnswer("data", data_hex=entry["downlinkData"].lower())


def failed_downlink(code: InfoCode, reason: str) -> str:
    """The cbStatus words of a downlink callback's answer that gave no downlink."""
    return f"downlink failed ({code.name}): {reason}"


async def downlink_records(delivery: Delivery, outcome: Outcome, answered_ms: int, context: Context) -> Answered:
    """What the first answer of a downlink callback, received at `answered_ms`, gives: a downlink,
    nothing, or an ACKNOWLEDGE; and the words for its attempt in cbStatus."""
    deadline_ms = downlink_timing(context.settings).answer_by(uplink_time_ms(delivery))
    late_ms = answered_ms - deadline_ms
    if not outcome.ok:
        reason = outcome.info or outcome.error_class
        return Answered([context.ack(delivery, InfoCode.NO_ANSWER, f"No answer: {reason}")],
                        failed_downlink(InfoCode.NO_ANSWER, reason))
    if late_ms > 0:
        reason = f"the answer came {late_ms / 1000:.1f} s after its deadline"
        return Answered([context.ack(delivery, InfoCode.NO_ANSWER, f"No answer: {reason}")],
                        failed_downlink(InfoCode.NO_ANSWER, reason))
    answer = parse_bidir_answer(delivery["device"], outcome.status, outcome.content_type, outcome.body)
    if answer.kind == "no_data":
        return Answered([], "no downlink (noData)")
    if answer.kind == "invalid":
        assert answer.reason is not None  # an invalid answer always says why
        return Answered([context.ack(delivery, InfoCode.INVALID_PAYLOAD, f"Invalid payload: {answer.reason}")],
                        failed_downlink(InfoCode.INVALID_PAYLOAD, answer.reason))
    assert answer.data_hex is not None  # an answer of kind "data" carries it
    return await context.grant(delivery, answer.data_hex)


def later_attempt(outcome: Outcome) -> Answered:
    """What a downlink callback's later attempt (a retry) says: it gives no downlink."""
    return Answered([], NOT_A_DOWNLINK if outcome.ok else None)
