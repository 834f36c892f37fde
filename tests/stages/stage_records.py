"""Typed input records for the stage tests, each built by its `schemas/` builder and encoded by its
encoder, as the stage upstream publishes it (never a hand-made dict)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from schemas.advanced_messages import AdvancedMessage, Duplicate, Rinfo, advanced_message, encode_advanced_message
from schemas.device_events import DeviceEvent, Subject, encode_device_event, keep_alive_error, out_of_sequence, restored
from schemas.frames import Frame
from schemas.messages import Message, duplicate_reception, encode_message, first_reception


class Owner(Protocol):
    """Whose devices the records are about: a `stage_support.Configured`, or an `Owned` made through the API."""

    @property
    def device_type(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def registrations(self) -> dict[str, int]: ...


@dataclass
class Owned:
    device_type: str
    group: str
    registrations: dict[str, int]  # device -> its registration


T0 = 1_764_165_600_000  # the stations' time of the first message, ms
FREQ = 868_130_000


def subject(conf: Owner, device: str) -> Subject:
    return Subject(device, conf.device_type, conf.group, conf.registrations[device])


def message_id(device: str, seq: int, time_ms: int) -> str:
    return f"{device}-{seq}-{time_ms}"


def frame(device: str, seq: int, *, station: str = "5A01", time_ms: int = T0, data: str = "c0ffee",
          rssi: float = -100.0, snr: float = 12.5, rep: int = 1, ack: bool = False) -> Frame:
    return Frame(station, device, seq, time_ms, data, rssi, snr, FREQ, rep, ack, False)


def message(conf: Owner, device: str, seq: int, *, time_ms: int = T0, **frame_fields: Any) -> Message:
    """The first reception of message `seq` of `device`, as ingest publishes it."""
    f = frame(device, seq, time_ms=time_ms, **frame_fields)
    s = subject(conf, device)
    return first_reception(message_id(device, seq, time_ms), f, device_type_id=s.device_type_id,
                           group_id=s.group_id, registration_id=s.registration_id, avg_snr=11.0, over_quota=False,
                           ingested_at_ms=time_ms + 40)


def duplicate(conf: Owner, first: Message, station: str, *, rssi: float, rep: int = 1) -> Message:
    """Another station's reception of message `first`."""
    f = frame(first["device"], first["seqNumber"], station=station, time_ms=first["time"], data=first["data"],
              rssi=rssi, rep=rep)
    s = subject(conf, first["device"])
    return duplicate_reception(first["id"], f, device_type_id=s.device_type_id, group_id=s.group_id,
                               registration_id=s.registration_id)


# (station, rssi, snr, repetitions) of each reception of an aggregated message
HEARD = (("5A01", -100.0, 12.5, 3), ("5A02", -110.5, 8.25, 2), ("5A03", -121.0, 3.0, 1))
LOCATION = {"lat": 43.61234, "lng": 1.44321, "radius": 1500, "source": 2, "status": 1}


def advanced(conf: Owner, first: Message, heard: tuple[tuple[str, float, float, int], ...] = HEARD, *,
             location: dict[str, Any] | None = None, lqi: tuple[str, int] = ("Excellent", 3)) -> AdvancedMessage:
    """The DATA_ADVANCED record of message `first`, heard by the stations of `heard`."""
    s = subject(conf, first["device"])
    duplicates: list[Duplicate] = [{"bsId": b, "rssi": r, "snr": n, "nbRep": rep} for b, r, n, rep in heard]
    rinfos: list[Rinfo] = [{"baseStation": b, "rssi": r, "snr": n, "freq": FREQ, "rep": rep}
                           for b, r, n, rep in heard]
    return advanced_message(first["id"], first["device"], device_type_id=s.device_type_id, group_id=s.group_id,
                            registration_id=s.registration_id, seq_number=first["seqNumber"],
                            time_ms=first["time"], data=first["data"], ack=first.get("ack", False),
                            duplicates=duplicates, rinfos=rinfos, lqi=lqi[0], link_quality=lqi[1],
                            computed_location=LOCATION if location is None else location,
                            operator_name="Backhaul", country_code="250", deadline_ms=first["time"] + 25_000)


def error_event(conf: Owner, device: str, *, deadline_ms: int, last_seen_ms: int) -> DeviceEvent:
    """The keep-alive ERROR of `device` whose deadline passed at `deadline_ms`."""
    return keep_alive_error(subject(conf, device), deadline_ms, deadline_key_ms=deadline_ms,
                            info=f"No message received since {last_seen_ms}", last_seen_ms=last_seen_ms)


def restored_event(conf: Owner, device: str, first: Message, *, error_time_ms: int) -> DeviceEvent:
    """`device`, in ERROR since `error_time_ms`, heard again with message `first`."""
    return restored(subject(conf, device), first["time"], message_id=first["id"], info="Communication restored",
                    last_error_time_ms=error_time_ms)


def trashed_event(conf: Owner, device: str, *, seq: int, last_seq: int, time_ms: int) -> DeviceEvent:
    """A frame of `device` with the old seqNumber `seq` (the last accepted being `last_seq`) trashed."""
    return out_of_sequence(subject(conf, device), time_ms, seq=seq, frame_time=time_ms, last_seq=last_seq)


def keyed_message(m: Message) -> tuple[bytes, bytes]:
    return m["device"].encode(), encode_message(m)


def keyed_advanced(a: AdvancedMessage) -> tuple[bytes, bytes]:
    return a["device"].encode(), encode_advanced_message(a)


def keyed_event(e: DeviceEvent) -> tuple[bytes, bytes]:
    return e["device"].encode(), encode_device_event(e)
