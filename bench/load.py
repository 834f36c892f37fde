"""The offered load: the simulated network, the frames it publishes, and what was sent."""
from __future__ import annotations

from dataclasses import dataclass

from schemas.frames import FrameRecord
from simulator.network import Network, build_network, simulate

Key = tuple[str, int]  # (device, seqNumber)

SEQ_MODULO = 4096


@dataclass
class Networks:
    """The simulated network, the registered part of it, and the devices left unregistered on purpose."""

    full: Network
    registered: Network
    unregistered: set[str]


def build_networks(stations: int, devices: int, *, unregistered: int = 0, seed: int = 1) -> Networks:
    """`devices` registered devices plus `unregistered` ones whose frames ingest must reject."""
    full = build_network(stations, devices + unregistered, seed=seed)
    registered = Network(full.stations, full.devices[:devices])
    return Networks(full, registered, {d.id for d in full.devices[devices:]})


def check_capacity(devices: int, messages: float) -> None:
    """Messages are matched by (device, seqNumber): no device may wrap its 12-bit counter in one run."""
    per_device = messages / max(1, devices)
    if per_device >= SEQ_MODULO:
        raise ValueError(f"{messages:.0f} messages over {devices} devices would reuse seqNumbers "
                         f"({per_device:.0f} per device >= {SEQ_MODULO}): use more --devices")


def first_frames(record: list[FrameRecord]) -> dict[Key, int]:
    """The earliest frame `time` (epoch ms) of every message in the published frames."""
    first: dict[Key, int] = {}
    for f in record:
        key = (f["device"], f["seqNumber"])
        t = f["time"]
        if t < first.get(key, t + 1):
            first[key] = t
    return first


async def drive(network: Network, *, rate: float, duration: float, max_stations: int, seed: int,
                producer, record: list[FrameRecord]) -> dict:
    """Publish the network's traffic at `rate` messages/s for `duration` s; every frame lands in `record`."""
    return await simulate(network, messages_per_device=None, rate=rate, duration=duration,
                          max_stations=max_stations, seed=seed, progress=False, producer=producer,
                          record=record)
