"""free_port hands out ports no outgoing connection can take before the child binds them."""
from pathlib import Path

from program.supervised import free_port


def _ephemeral() -> tuple[int, int]:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return low, high


def test_ports_lie_outside_the_ephemeral_range_and_are_never_handed_out_twice():
    low, high = _ephemeral()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]

