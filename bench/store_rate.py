"""The store's writes alone: PostgreSQL's CPU and the client's per message, by batch size.

    python -m bench.store_rate [--batch 30] [--batches 300]

In a private database (`bench.sandbox`), the store stage's `_write` is given
`--batches` batches of `--batch` messages each, shaped as the pipeline's:
per message its row, the DATA_ADVANCED update of a message 25 batches older,
two callbacks' announcements and their completions (one callback's in the same
batch, the other's in the next), and its device's status. One connection; the
CPU of its PostgreSQL backend (from /proc) and of this process are read around
the timed batches (five untimed first). Prints one line; compare two versions
of the code by running it from each checkout, alternated (bench/README.md).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from backhaul.db import create_pool
from bench.cpu import process_cpu_seconds
from bench.sandbox import sandbox
from store.stage import Rows, StoreStage

DEVICES = 5000
WARM_UP = 5


def batch_rows(stage: StoreStage, number: int, size: int) -> Rows:
    """The rows of batch `number` (see the module docstring)."""
    rows = Rows()
    at = 1_700_000_000_000 + number * 1000
    for i in range(size):
        device = f"D{(number * size + i) % DEVICES:05X}"
        message = f"m{number}-{i}"
        records = Rows()
        uplink: Any = {"id": message, "device": device, "deviceTypeId": "dt", "time": at, "seqNumber": number % 4096,
                       "data": "aabb", "station": "S1", "rssi": -100.0, "snr": 10.0, "freq": 868_130_000,
                       "registrationId": 1}
        stage._message(uplink, records)
        advanced: Any = {"messageId": f"m{number - 25}-{i}", "device": device, "deviceTypeId": "dt", "time": at,
                         "seqNumber": number % 4096, "data": "aabb", "nbFrames": 3, "linkQuality": 2,
                         "rinfos": [{"baseStation": "S1", "rssi": -100.0, "snr": 10.0, "freq": 868_130_000, "rep": 1}],
                         "computedLocation": {"lat": 1.0, "lng": 2.0, "radius": 100, "source": 2, "status": 1},
                         "registrationId": 1}
        stage._advanced(advanced, records)
        for callback in ("c1", "c2"):
            delivery = f"{message}:{callback}"
            about: Any = {"messageId": message, "device": device, "callbackId": callback, "registrationId": 1,
                     "attempt": 1}
            announced: Any = {**about, "deliveryId": delivery, "sendId": f"s{delivery}", "state": "sending",
                              "sentAt": at, "time": at}
            stage._result(announced, records)
            completed = delivery if callback == "c1" else f"m{number - 1}-{i}:{callback}"
            answered: Any = {**about, "deliveryId": completed, "sendId": f"s{completed}", "state": "done",
                             "sentAt": at, "time": at + 5, "status": 200, "info": "ok", "latencyMs": 3.0,
                             "errorClass": "ok", "answer": ""}
            stage._result(answered, records)
        rows.add(records)
    return rows


async def run(size: int, batches: int) -> dict[str, float]:
    async with sandbox() as box:
        pool = await create_pool(box.dsn, min_size=1, max_size=1)
        try:
            stage = StoreStage(pool)
            async with pool.acquire() as conn:
                backend = await conn.fetchval("SELECT pg_backend_pid()")
            prepared = [batch_rows(stage, n, size) for n in range(batches + WARM_UP)]
            for rows in prepared[:WARM_UP]:
                await stage._write(rows)
            pg0, client0, wall0 = process_cpu_seconds(backend), time.process_time(), time.monotonic()
            for rows in prepared[WARM_UP:]:
                await stage._write(rows)
            pg1, client1, wall1 = process_cpu_seconds(backend), time.process_time(), time.monotonic()
        finally:
            await pool.close()
    messages = size * batches
    if pg0 is None or pg1 is None:
        raise SystemExit("the PostgreSQL backend's CPU could not be read (/proc)")
    return {"postgresqlMsPerMessage": 1000 * (pg1 - pg0) / messages,
            "clientMsPerMessage": 1000 * (client1 - client0) / messages,
            "wallMsPerMessage": 1000 * (wall1 - wall0) / messages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=30, help="messages per store batch")
    parser.add_argument("--batches", type=int, default=300, help="timed batches")
    args = parser.parse_args()
    if args.batch < 1 or args.batches < 1:
        parser.error("--batch and --batches must be at least 1")
    figures = asyncio.run(run(args.batch, args.batches))
    print(f"{Path(os.getcwd()).name}: {args.batch * args.batches} messages in batches of {args.batch}: "
          f"PostgreSQL {figures['postgresqlMsPerMessage']:.3f} ms/message, "
          f"client {figures['clientMsPerMessage']:.3f}, wall {figures['wallMsPerMessage']:.3f}")


if __name__ == "__main__":
    main()
