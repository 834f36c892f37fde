"""IoT Hub's front door for the AZURE_IOT_HUB channel's tests: what Mosquitto cannot do, check a SAS token.

It listens with TLS on 127.0.0.1 (the broker's test certificate) and reads each connection's MQTT
CONNECT as IoT Hub would: MQTT 3.1.1, the user name `{hub}/{client id}/?api-version=2021-04-12`, the
password a SAS token for the resource `{hub}/devices/{client id}` signed with the hub's key (the
signature recomputed here, independently of `backhaul.sas_token`), not expired, with the expected
policy (skn). A CONNECT that fails is answered CONNACK 5 (not authorized), as the hub does; one that
passes is piped, unchanged, to the broker's plain listener (an open-access Mosquitto whose ACL lets a
client publish only under `devices/{its client id}/messages/events/`)."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from program.supervised import free_port
from tests.mosquitto import Mosquitto

API_VERSION = "2021-04-12"
NOT_AUTHORIZED = bytes([0x20, 0x02, 0x00, 0x05])
# Only a client may publish, and only as its own device; the reader reads everything.
ACL = "pattern write devices/%c/messages/events/#\n\nuser reader\ntopic read #\n"


@dataclass
class Connect:
    client_id: str
    username: str
    password: str
    level: int
    expiry: int = 0


@dataclass
class HubFront:
    broker: Mosquitto
    hub: str  # the hub's host name, as in the connection string
    key: str  # the hub's (or the device's) base64 key
    policy: str | None  # the skn a token must carry (None: a device key, none)
    port: int = field(default_factory=free_port)
    accepted: list[Connect] = field(default_factory=list)
    refused: list[tuple[Connect | None, str]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> "HubFront":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.broker.folder / "server.pem", self.broker.folder / "server.key")
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=tls)
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (the hub unreachable)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def why_refused(self, c: Connect) -> str | None:
        if c.level != 4:
            return f"MQTT level {c.level}: IoT Hub speaks 3.1.1 (4)"
        if c.username != f"{self.hub}/{c.client_id}/?api-version={API_VERSION}":
            return f"user name {c.username!r} is not the hub's for {c.client_id!r}"
        if not c.password.startswith("SharedAccessSignature "):
            return "the password is not a SAS token"
        fields = dict(p.split("=", 1) for p in c.password.removeprefix("SharedAccessSignature ").split("&"))
        if unquote_plus(fields.get("sr", "")) != f"{self.hub}/devices/{c.client_id}":
            return f"the token grants {unquote_plus(fields.get('sr', ''))!r}"
        if (unquote_plus(fields["skn"]) if "skn" in fields else None) != self.policy:
            return "the token's policy (skn) is not the key's"
        c.expiry = int(fields.get("se", "0"))
        if c.expiry <= time.time():
            return "the token has expired"
        expected = hmac.new(base64.b64decode(self.key), f"{fields['sr']}\n{fields['se']}".encode(),
                            hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64decode(unquote_plus(fields.get("sig", ""))), expected):
            return "the token's signature is wrong"
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            packet, connect = await _read_connect(reader)
            why = self.why_refused(connect) if connect is not None else "not a CONNECT"
            if why is not None:
                self.refused.append((connect, why))
                writer.write(NOT_AUTHORIZED)
                await writer.drain()
                return
            self.accepted.append(connect)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker.port)
            self._open.add(up_writer)
            up_writer.write(packet)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._open.discard(w)
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _read_connect(reader: asyncio.StreamReader) -> tuple[bytes, Connect | None]:
    """(the packet as read, its CONNECT fields) of the first MQTT packet."""
    first = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = await reader.readexactly(length)
    if first[0] >> 4 != 1:
        return first + raw + body, None

    def string(at: int) -> tuple[str, int]:
        n = int.from_bytes(body[at:at + 2], "big")
        return body[at + 2:at + 2 + n].decode(), at + 2 + n
    _, at = string(0)  # "MQTT"
    level, flags = body[at], body[at + 1]
    client_id, at = string(at + 4)  # after the level, the flags and the keep-alive
    if flags & 0x04:  # a will: topic and message
        _, at = string(at)
        _, at = string(at)
    username, at = string(at) if flags & 0x80 else ("", at)
    password, at = string(at) if flags & 0x40 else ("", at)
    return first + raw + body, Connect(client_id, username, password, level)
