"""moto's server standing in for AWS (IoT data, Kinesis, SQS) on 127.0.0.1, for the AWS channels' tests and
bench (`moto[server]`, a test dependency).

`Moto` runs it in this process (moto's ThreadedMotoServer): its state (queues, streams, what was published)
outlives `stop` and `start` on the same port (a service down, then back), and what the IoT data plane was sent
is readable here (`published`): moto's server keeps published payloads in memory and has no API to read them
back, nor does it keep the MQTT 5 user properties, so the fixture records each Publish request with its headers.
`MotoProcess` runs `python -m moto.server` as a process of its own, with its own settings (IAM authentication
on, for refused credentials; the bench, where the server must not share the measuring process's interpreter).

Clients (`client`) are aiobotocore's, with the test account's keys."""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiobotocore.session import get_session

from backhaul.settings import PROJECT_ROOT
from program.demo.seed import stable_id
from program.supervised import free_port, terminate

REGION = "eu-west-1"
ACCESS_KEY_ID = "AKIAMOTOTESTKEY12345"
SECRET_ACCESS_KEY = "moto/Secret+Access/Key0123456789abcdef"
ACCOUNT = "123456789012"  # moto's default account
START_S = 10.0
# The AWS channel tests' callbacks: a JSON body of the uplink's variables, on the pipeline's device type.
BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}"}'
TYPE_ID = stable_id("t", "device-type")  # the device type tests.conftest's pipeline seeds
# Worker settings of the outage tests: quick retries, a short timeout, a circuit that stays closed.
RETRY_ENV = {"BACKHAUL_RETRY_SCHEDULE_S": "1,1,1,1,1", "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_CALLBACK_TIMEOUT_S": "3",
             "BACKHAUL_BREAKER_FAILURES": "100"}
# ... and of the kill -9 tests: deliveries paced (100/s) so that the kill finds some held by the worker.
PACED_ENV = {"BACKHAUL_RETRY_CLAIM_S": "3", "BACKHAUL_ENDPOINT_RATE_PER_S": "100", "BACKHAUL_ENDPOINT_BURST": "10",
             "BACKHAUL_ENDPOINT_QUEUE": "1000"}


@dataclass(frozen=True)
class Published:
    """One IoT data plane Publish as the service received it."""

    topic: str
    payload: bytes
    qos: int
    user_properties: list[dict[str, str]]
    content_type: str | None


PUBLISHED: list[Published] = []


def _record_publishes() -> None:
    """Wrap moto's IoT data Publish handler to keep each request with its headers (once per process)."""
    from urllib.parse import unquote

    from moto.iotdata.responses import IoTDataPlaneResponse

    if getattr(IoTDataPlaneResponse.publish, "recording", False):
        return
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    original = IoTDataPlaneResponse.publish

    def publish(self: Any) -> str:
        properties = self.headers.get("x-amz-mqtt5-user-properties")
        PUBLISHED.append(Published(
            unquote(self.path.split("/topics/")[-1]), self.body if isinstance(self.body, bytes) else self.body.encode(),
            int(self.querystring.get("qos", ["0"])[0]),
            orjson.loads(base64.b64decode(properties)) if properties else [],
            self.querystring.get("contentType", [None])[0]))
        return original(self)

    publish.recording = True  # type: ignore[attr-defined]
    IoTDataPlaneResponse.publish = publish  # type: ignore[method-assign]


def _wait_port(port: int, up: bool, timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"moto on 127.0.0.1:{port} did not {'start' if up else 'stop'} within {timeout}s")


@dataclass
class Moto:
    """moto's server in this process; `stop` then `start` keeps its port and its state."""

    port: int = field(default_factory=free_port)
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Moto":
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        _record_publishes()
        serialise_kinesis_puts()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        _wait_port(self.port, up=True)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            _wait_port(self.port, up=False)

    def published(self, prefix: str) -> list[Published]:
        return [p for p in PUBLISHED if p.topic.startswith(prefix)]

    def client(self, service: str) -> AbstractAsyncContextManager[Any]:
        return client(service, self.url)


@dataclass
class MotoProcess:
    """`python -m moto.server` in a process of its own; `env` adds moto settings (INITIAL_NO_AUTH_ACTION_COUNT=0:
    every request must be signed with a key moto's IAM knows)."""

    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoProcess":
        self.process = subprocess.Popen([sys.executable, "-m", "tests.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        env={**os.environ, **self.env}, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        try:
            _wait_port(self.port, up=True)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def client(self, service: str) -> AbstractAsyncContextManager[Any]:
        return client(service, self.url)


def serialise_kinesis_puts() -> None:
    """Make moto's Kinesis PutRecord(s) one at a time (idempotent).

    moto 5's `Shard.put_record` numbers a record as the shard's highest sequence number + 1 and stores it
    under that number ("not safe for concurrency", its own comment): two requests on two of the threaded
    server's threads can take the same number, and the second record replaces the first while both callers
    are answered 200 with that number. Seen in the kill -9 test on a busy machine (two deliveries answered
    `shardId-000000000002@42`, one record missing for good); our receivers must not lose what they acknowledged."""
    from moto.kinesis.models import Shard

    if getattr(Shard.put_record, "serialised", False):
        return
    unsafe, lock = Shard.put_record, threading.Lock()

    def put_record(self: Any, *args: Any, **kwargs: Any) -> str:
        with lock:
            return unsafe(self, *args, **kwargs)

    put_record.serialised = True  # type: ignore[attr-defined]
    Shard.put_record = put_record  # type: ignore[method-assign]


def client(service: str, url: str) -> AbstractAsyncContextManager[Any]:
    """An aiobotocore client of `service` on the moto server at `url`, with the test account's keys."""
    return get_session().create_client(service, region_name=REGION, endpoint_url=url,
                                       aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)


def aws_callback(cb_id: str, channel: str, url: str, **own: Any) -> dict[str, Any]:
    """A callbacks row of an AWS channel with a JSON body (`BODY`), its account pointed at moto at `url`."""
    return {"id": cb_id, "channel": channel, "content_type": "application/json", "body_template": BODY,
            "channel_settings": aws_settings(url, **own)}


def aws_settings(url: str, **own: Any) -> dict[str, Any]:
    """The account members of an AWS callback's channelSettings, pointed at the moto server at `url`."""
    return {"region": REGION, "accessKeyId": ACCESS_KEY_ID, "secretAccessKey": SECRET_ACCESS_KEY,
            "endpointUrl": url, **own}


@pytest.fixture
def moto():
    """A `Moto` server for one test (import it into the test module)."""
    server = Moto().start()
    yield server
    server.stop()


def aws_name(isolated: Any) -> str:
    """The test's prefix as AWS names allow it (letters, digits, - and _)."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in isolated.prefix)


async def kill_9_mid_flight(worker: Any, timeout: float = 15.0) -> float:
    """kill -9 the delivery worker as soon as its metrics show deliveries in flight; how many it showed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = await worker.metrics()
        gauge = next(line for line in metrics.splitlines() if line.startswith("backhaul_deliveries_in_flight "))
        if (in_flight := float(gauge.split()[1])) > 0:
            worker.kill9()
            return in_flight
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no delivery in flight within {timeout}s")


if __name__ == "__main__":  # what MotoProcess runs: moto's own server, its Kinesis puts serialised
    from moto.server import main

    serialise_kinesis_puts()
    main()
