"""The supervisor's control channel: a Unix socket, `<state>/run/supervisor.sock`, mode 600.

One JSON line each way: `{"command": "stop", "name": "delivery"}` ->
`{"ok": true, "message": "..."}` or `{"ok": false, "error": "..."}`.

A Unix socket's path may not exceed 107 bytes, and a checkout can live
deeper than that (a home folder, spaces, non-ASCII names: each é is two
bytes). A longer path is reached through `/proc/self/fd/N/supervisor.sock`,
N being a descriptor of its folder, which is always short.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from program.processes import run_dir

SUN_PATH_MAX = 107
Handler = Callable[[dict], Awaitable[dict]]


class NoSupervisor(RuntimeError):
    """Nothing answers on the control socket."""


def socket_path() -> Path:
    return run_dir() / "supervisor.sock"


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """A name for `path` short enough for bind() and connect()."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def serve(handle: Handler) -> asyncio.AbstractServer:
    """Answer requests on the control socket with `handle(request) -> reply`."""
    path = socket_path()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                reply = {"ok": False, "error": f"request: not a JSON object on one line ({exc})"}
            else:
                reply = await handle(request)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()

    path.unlink(missing_ok=True)  # left by a supervisor that was killed: only one supervisor runs (its lock)
    with _reachable(path) as name:
        server = await asyncio.start_unix_server(on_connection, path=name)
    os.chmod(path, 0o600)
    return server


def request(command: str, name: str | None = None, timeout: float = 90.0) -> dict:
    """Send one command to the supervisor and return its reply; NoSupervisor if none answers."""
    path = socket_path()
    payload = json.dumps({"command": command, "name": name}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _reachable(path) as target:
                sock.connect(target)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoSupervisor(f"no supervisor answers on {path}") from exc
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise NoSupervisor(f"the supervisor closed {path} without answering")
    return json.loads(data)
