"""free_port hands out ports no outgoing connection can take before the child binds them."""
from pathlib import Path

from program.supervised import free_port, free_port_block


def _ephemeral() -> tuple[int, int]:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return low, high


def test_ports_lie_outside_the_ephemeral_range_and_are_never_handed_out_twice():
    low, high = _ephemeral()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]



def test_a_block_lies_outside_the_ephemeral_range_and_shares_no_port_with_another():
    low, high = _ephemeral()
    offsets = [10 * node + kind for node in range(3) for kind in range(3)]
    blocks = [[base + offset for offset in offsets] for base in (free_port_block(offsets) for _ in range(40))]
    every = [port for block in blocks for port in block] + [free_port() for _ in range(100)]
    assert len(set(every)) == len(every)
    assert not [p for p in every if low <= p <= high]
    assert all(p <= 65535 for p in every)
