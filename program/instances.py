"""Worker instances on this machine: a stable group identity for each, and a file `status` reads.

Every `backhaul worker` claims a slot for its set of roles: the first file
`<state>/run/workers/<instance id>.json` it can lock (flock; the kernel
releases the lock when the process ends, kill -9 included). The default
instance id is `<host>-<roles>-<slot>`, e.g. `edge1-store_relay-0`: a worker
restarted after a crash finds slot 0 free again, so it comes back with the
same id and gets its partitions back without a rebalance (static membership,
KIP-345); a second worker of the same roles on the machine takes slot 1, so
the two never fence each other. `BACKHAUL_INSTANCE_ID` gives the id instead
(for all the worker's groups); a second process on the machine with the same
id is refused. Instance ids must be unique within a consumer group across
machines: host names are, or set the variable.

The file says who holds the slot (pid, its start time, roles, metrics port,
id) and is removed at exit; a file whose pid no longer runs with that start
time (the check of `program.processes`) is ignored, so a worker started by
hand is listed by `backhaul status` exactly while it runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from backhaul.settings import settings
from program.processes import lock_file, run_dir, start_time

# Kafka accepts these in a group.instance.id, up to 249 characters.
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True, slots=True)
class Instance:
    """A running worker as its instance file describes it."""

    id: str
    roles: list[str]
    pid: int
    started: str  # the kernel's start time of the process (see processes.start_time)
    metrics_port: int
    since: float  # epoch seconds


def instances_dir() -> Path:
    d = run_dir() / "workers"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_instance_id(roles: list[str], slot: int) -> str:
    """`<host>-<roles>-<slot>` with only the characters Kafka accepts."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
    return f"{host}-{'_'.join(sorted(roles))}-{slot}"


def check_instance_id(value: str) -> str:
    """`value` if Kafka accepts it as a group instance id; else a ValueError naming the variable."""
    if not INSTANCE_ID.fullmatch(value):
        raise ValueError(f"BACKHAUL_INSTANCE_ID={value!r}: use 1 to 249 of the characters A-Z a-z 0-9 . _ - "
                         f"(Kafka's rule for a group instance id)")
    return value


@contextlib.contextmanager
def registered(roles: list[str], metrics_port: int) -> Iterator[Instance]:
    """Claim this worker's slot and describe it in its instance file until the block ends."""
    explicit = settings().instance_id
    directory = instances_dir()
    slot = 0
    if explicit:
        try:
            check_instance_id(explicit)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    while True:
        instance_id = explicit or default_instance_id(roles, slot)
        path = directory / f"{instance_id}.json"
        fd = lock_file(path)
        if fd is not None:
            break
        if explicit:
            holder = read_instance(path)
            raise SystemExit(f"BACKHAUL_INSTANCE_ID={instance_id} is already taken on this machine"
                             + (f" by pid {holder.pid} (roles {','.join(holder.roles)})" if holder else "")
                             + ": give each worker its own id")
        slot += 1
    pid = os.getpid()
    me = Instance(instance_id, list(roles), pid, start_time(pid) or "", metrics_port, time.time())
    data = json.dumps(asdict(me)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    try:
        yield me
    finally:
        path.unlink(missing_ok=True)  # still holding the lock: nobody else can have taken the slot
        os.close(fd)


def read_instance(path: Path) -> Instance | None:
    """The instance a file describes if its process still runs, else None."""
    try:
        raw = json.loads(path.read_bytes() or b"null")
        instance = Instance(**raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, TypeError):
        return None  # gone, or being written
    if instance is None or not instance.started or start_time(instance.pid) != instance.started:
        return None
    return instance


def running_instances() -> list[Instance]:
    """Every worker of this checkout that runs now (by hand, under the supervisor, or under tests)."""
    found = (read_instance(p) for p in sorted(instances_dir().glob("*.json")))
    return [i for i in found if i is not None]
