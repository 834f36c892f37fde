"""A simulated radio network: stations at positions hearing devices, publishing frames.

Each message of each device is heard by 1..k stations (the nearest ones,
with an RSSI from a log-distance path-loss model plus noise) or, with a
`RadioModel` (simulator/radio_model.py, opt-in), by the stations its link
budget and a shadowing draw say hear it (none: the message is lost), each station
hears 1..3 repetitions, and the copies of one message arrive in shuffled
order, interleaved with other devices' traffic. Frames are keyed by device
id, as real gateways do. A device's own messages stay in order: the radio
does not let a device overtake itself.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson

from backhaul.geo import distance_m
from backhaul.kafka import make_producer
from backhaul.topics import topic
from radio.station_rows import StationRow
from schemas.frames import FrameRecord, encode_frame
from schemas.topics import FRAMES
from simulator.radio_model import RadioModel

log = logging.getLogger(__name__)

CENTER = (43.6045, 1.4442)  # Toulouse
BASE_FREQ = 868_130_000

MALFORMED_SAMPLES: tuple[bytes, ...] = (
    orjson.dumps({"station": "ZZZZ", "device": "1", "seqNumber": 1, "time": 0, "data": "", "rssi": -100.0,
                  "snr": 10.0, "freq": BASE_FREQ}),                                 # station id not hex
    orjson.dumps({"station": "0001", "device": "1", "seqNumber": 1, "time": 0, "data": "00" * 13,
                  "rssi": -100.0, "snr": 10.0, "freq": BASE_FREQ}),                 # 13-byte payload
    orjson.dumps({"station": "0001", "device": "1", "seqNumber": 5000, "time": 0, "data": "",
                  "rssi": -100.0, "snr": 10.0, "freq": BASE_FREQ}),                 # seqNumber out of range
    orjson.dumps({"station": "0001", "seqNumber": 1, "time": 0, "data": "", "rssi": -100.0, "snr": 10.0,
                  "freq": BASE_FREQ}),                                              # no device
    b"this is not JSON at all",                                                     # not JSON
)


@dataclass
class Station:
    id: str
    lat: float
    lng: float


@dataclass
class Device:
    id: str
    lat: float
    lng: float
    seq: int = 0
    nearest: list[tuple[float, Station]] = field(default_factory=list)


@dataclass
class Network:
    stations: list[Station]
    devices: list[Device]


def station_id(i: int) -> str:
    return f"{0xA000 + i:04X}"


def device_id(i: int) -> str:
    return f"{0x100000 + i:X}"


def build_network(n_stations: int, n_devices: int, *, seed: int = 1, spread_km: float = 20.0) -> Network:
    """Stations on a circle around the centre, devices scattered inside it."""
    rng = random.Random(seed)
    deg = spread_km / 111.0
    stations = []
    for i in range(n_stations):
        angle = 2 * math.pi * i / max(1, n_stations)
        r = deg * (0.3 + 0.7 * ((i * 0.618) % 1)) if n_stations > 3 else deg * 0.5
        stations.append(Station(station_id(i), round(CENTER[0] + r * math.sin(angle), 6),
                                round(CENTER[1] + r * math.cos(angle), 6)))
    return Network(stations, scatter_devices(stations, n_devices, rng, CENTER, deg, deg))


def scatter_devices(stations: list[Station], n_devices: int, rng: random.Random, center: tuple[float, float],
                    lat_deg: float, lng_deg: float) -> list[Device]:
    """Devices spread uniformly over 70 % of `center` +- (`lat_deg`, `lng_deg`), each with its stations by
    distance."""
    devices = []
    for i in range(n_devices):
        d = Device(device_id(i), center[0] + rng.uniform(-lat_deg, lat_deg) * 0.7,
                   center[1] + rng.uniform(-lng_deg, lng_deg) * 0.7, seq=rng.randrange(4096))
        d.nearest = sorted(((distance_m(d.lat, d.lng, s.lat, s.lng), s) for s in stations), key=lambda x: x[0])
        devices.append(d)
    return devices


def registry_network(rows: Sequence[StationRow], n_devices: int, *, seed: int = 1) -> Network:
    """The registry's serving (enabled) stations, from the stations file (`radio.station_rows`, the file
    `backhaul stations import` loads), with devices scattered over the area they span."""
    stations = [Station(r.id, r.lat, r.lng) for r in rows if r.state == "enabled"]
    if not stations:
        raise ValueError("the stations file has no enabled station")
    lats, lngs = [s.lat for s in stations], [s.lng for s in stations]
    center = ((min(lats) + max(lats)) / 2, (min(lngs) + max(lngs)) / 2)
    # The stations' extent, at least 1 km: devices fall between them, as far out as the outermost one.
    half_lat, half_lng = max((max(lats) - min(lats)) / 2, 0.01), max((max(lngs) - min(lngs)) / 2, 0.01)
    rng = random.Random(seed)
    return Network(stations, scatter_devices(stations, n_devices, rng, center, half_lat / 0.7, half_lng / 0.7))


def rssi_at(distance: float, rng: random.Random) -> float:
    """Log-distance path loss: -90 dBm at 100 m, exponent 3, 4 dB of noise, floored at -145."""
    loss = 30 * math.log10(max(distance, 100.0) / 100.0)
    return round(max(-145.0, min(-60.0, -90.0 - loss + rng.gauss(0, 4))), 1)


def heard_by(device: Device, rng: random.Random, max_stations: int,
             radio: RadioModel | None) -> Iterator[tuple[str, float, float]]:
    """(station id, RSSI, jitter of the repetitions' RSSI) of the stations that hear one transmission.

    Lazy: the k-nearest model draws a station's RSSI just before its repetitions, as it always has (the
    same seed gives the same traffic)."""
    if radio is not None:
        # The shadowing draw is the transmission's RSSI: its repetitions report it as it is.
        for station, rssi in radio.hear(device.lat, device.lng, rng):
            yield station, min(0.0, rssi), 0.0
        return
    n = rng.randint(1, max(1, min(max_stations, len(device.nearest))))
    for dist, st in device.nearest[:n]:
        yield st.id, rssi_at(dist, rng), 1.0


def message_frames(device: Device, rng: random.Random, *, max_stations: int, data: str | None = None,
                   ack: bool = False, now_ms: int | None = None, oob: bool = False,
                   radio: RadioModel | None = None) -> list[FrameRecord]:
    """The frames of one transmission: 1..max_stations stations (or those `radio` says hear it), 1..3
    repetitions each, shuffled."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    seq = device.seq
    device.seq = (device.seq + 1) % 4096
    payload = data if data is not None else rng.randbytes(rng.randint(0, 12)).hex()
    frames: list[FrameRecord] = []
    for station, rssi, jitter in heard_by(device, rng, max_stations, radio):
        for rep in range(1, rng.choice((1, 3)) + 1):
            frames.append({"station": station, "device": device.id, "seqNumber": seq, "time": now_ms + rep * 10,
                           "data": payload, "rssi": round(rssi + rng.uniform(-jitter, jitter), 1),
                           "snr": round(max(0.0, min(40.0, (rssi + 150) / 3 + rng.gauss(0, 1))), 2),
                           "freq": BASE_FREQ + rng.randrange(-10000, 10000, 100), "rep": rep, "ack": ack,
                           "oob": oob})
    rng.shuffle(frames)
    return frames


async def simulate(network: Network, *, messages_per_device: int | None, rate: float, duration: float | None,
                   max_stations: int = 3, malformed: int = 0, seed: int = 2, ack_ratio: float = 0.0,
                   progress: bool = True, producer=None, record: list[FrameRecord] | None = None,
                   radio: RadioModel | None = None) -> dict:
    """Publish traffic at `rate` messages/s; returns counts of what was sent (`radio`: see message_frames)."""
    rng = random.Random(seed)
    own = producer is None
    if own:
        producer = make_producer(linger_ms=5)
        await producer.start()
    name = topic(FRAMES)
    sent = {"messages": 0, "frames": 0, "malformed": 0}
    started = time.monotonic()
    last_report = started
    futures = []
    try:
        rounds = 0
        malformed_left = malformed
        while True:
            if messages_per_device is not None and rounds >= messages_per_device:
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            order = list(network.devices)
            rng.shuffle(order)
            # Interleave the copies of a few messages at a time: shuffled arrival across stations.
            for chunk_start in range(0, len(order), 8):
                chunk = order[chunk_start:chunk_start + 8]
                pending: list[FrameRecord | bytes] = []  # bytes: a malformed record, sent as it is
                for dev in chunk:
                    pending.extend(message_frames(dev, rng, max_stations=max_stations,
                                                  ack=rng.random() < ack_ratio, radio=radio))
                rng.shuffle(pending)
                if malformed_left and rng.random() < 0.5:
                    pending.insert(rng.randrange(len(pending) + 1), MALFORMED_SAMPLES[malformed_left % len(MALFORMED_SAMPLES)])
                    malformed_left -= 1
                for f in pending:
                    if isinstance(f, bytes):
                        futures.append(await producer.send(name, f, key=b"malformed"))
                        sent["malformed"] += 1
                    else:
                        futures.append(await producer.send(name, encode_frame(f), key=f["device"].encode()))
                        sent["frames"] += 1
                        if record is not None:
                            record.append(f)
                sent["messages"] += len(chunk)
                if rate > 0:
                    ahead = sent["messages"] / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if len(futures) > 20000:
                    await asyncio.gather(*futures)
                    futures.clear()
                now = time.monotonic()
                if progress and now - last_report >= 1.0:
                    last_report = now
                    el = now - started
                    print(f"\rsimulate: {sent['messages']} messages, {sent['frames']} frames, "
                          f"{sent['malformed']} malformed, {sent['messages'] / el:.0f} msg/s, {el:.0f} s",
                          end="", file=sys.stderr, flush=True)
                if duration is not None and now - started >= duration:
                    break
            rounds += 1
        while malformed_left:
            futures.append(await producer.send(name, MALFORMED_SAMPLES[malformed_left % len(MALFORMED_SAMPLES)],
                                               key=b"malformed"))
            sent["malformed"] += 1
            malformed_left -= 1
        await asyncio.gather(*futures)
    finally:
        if own:
            await producer.stop()
    if progress:
        print(f"\rsimulate: done, {sent['messages']} messages, {sent['frames']} frames, "
              f"{sent['malformed']} malformed in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return sent
