"""Several instances of a worker process: `backhaul up --scale ingest=2,delivery=2`, `backhaul scale`.

Every stream stage is a Kafka consumer group, so more instances of a stage share its partitions (at
most one instance a partition: BACKHAUL_KAFKA_PARTITIONS bounds the useful count). The extra instances
of process NAME are NAME-2, NAME-3...; instance K (from 0) serves its metrics on the first role's port
+ 10 K, and takes the next free slot of its roles on this machine as its group identity
(program.instances). The downlink process (`stations,acks,dispatch`) and the API are not scaled here.
"""
from __future__ import annotations

import re

from program.roles import role_metrics_port
from program.supervisor import Planned

# Processes whose roles are consumer-group stages (the store process's relay takes a PostgreSQL lock:
# a second one waits).
SCALABLE = ("ingest", "router", "delivery", "store")
INSTANCE_PORT_STEP = 10
MAX_INSTANCES = 9  # ports stay below the next role's band

_EXTRA = re.compile(r"^(?P<base>[a-z]+)-(?P<n>[2-9])$")


def parse_scale(text: str) -> dict[str, int]:
    """`ingest=2,delivery=3` -> {"ingest": 2, "delivery": 3}; a ValueError names the part at fault."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--scale {part!r}: write PROCESS=COUNT, e.g. ingest=2")
        if name not in SCALABLE:
            raise ValueError(f"--scale {part!r}: {name!r} is not a process that scales ({', '.join(SCALABLE)})")
        if not count.strip().isdigit() or not 1 <= int(count) <= MAX_INSTANCES:
            raise ValueError(f"--scale {part!r}: the count is a whole number from 1 to {MAX_INSTANCES}")
        counts[name] = int(count)
    return counts


def base_plan(plan: list[Planned]) -> list[Planned]:
    """`plan` without the extra instances (NAME-2, NAME-3...) that `scaled` adds."""
    return [p for p in plan if not ((m := _EXTRA.match(p.name)) and m["base"] in SCALABLE)]


def instance_counts(plan: list[Planned]) -> dict[str, int]:
    """How many instances of each scalable process `plan` runs."""
    names = {p.name for p in plan}
    return {base: sum(1 for n in range(1, MAX_INSTANCES + 1) if (base if n == 1 else f"{base}-{n}") in names)
            for base in SCALABLE if base in names}


def scaled(plan: list[Planned], counts: dict[str, int]) -> list[Planned]:
    """`plan` (one instance a process) with `counts[name]` instances of the processes named."""
    out: list[Planned] = []
    for planned in plan:
        out.append(planned)
        roles = planned.roles()
        for k in range(1, counts.get(planned.name, 1)):
            port = role_metrics_port(roles[0]) + INSTANCE_PORT_STEP * k
            out.append(Planned(f"{planned.name}-{k + 1}", [*planned.argv, "--metrics-port", str(port)],
                               dict(planned.env)))
    return out
