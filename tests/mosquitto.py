"""A real Mosquitto broker for the MQTT channel's tests, on 127.0.0.1: a plain listener and a TLS one
(a CA and a server certificate for 127.0.0.1 made here with `cryptography`), a password file, no
anonymous access (or, for the IoT Hub tests, any user behind tests/iot_hub_front.py); an optional ACL. Installed by scripts/install-mosquitto (Debian's package).

Also a subscriber (aiomqtt, MQTT 5) that keeps every message with its user properties."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from program.supervised import free_port, terminate

USER, PASSWORD = "backhaul", "mq-s3cret-pass"
READER, READER_PASSWORD = "reader", "reader-pass"
START_S = 5.0


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)


def _certificates(folder: Path) -> tuple[str, Path, Path]:
    """(CA PEM, server certificate file, server key file), the server's valid for 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backhaul test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


@dataclass
class Mosquitto:
    """One broker; `stop` and `start` again keep its ports (a broker down, then back)."""

    folder: Path
    acl: str | None = None  # an ACL file's text; None: every user may do everything
    open_access: bool = False  # no password file: any user and password (tests/iot_hub_front.py checks them)
    users: dict[str, str] = field(default_factory=lambda: {USER: PASSWORD, READER: READER_PASSWORD})
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    ca: str = ""
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = _certificates(self.folder)
        passwords = self.folder / "passwd"
        passwords.write_text("")
        for user, password in {**self.users, READER: READER_PASSWORD}.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True,
                           capture_output=True, timeout=10)
        access = ["allow_anonymous true"] if self.open_access else ["allow_anonymous false",
                                                                    f"password_file {passwords}"]
        lines = ["per_listener_settings false", *access,
                 "persistence true", f"persistence_location {self.folder}/", "log_dest stderr", "log_type error", "log_type warning", "log_type notice",
                 "user root", f"listener {self.port} 127.0.0.1", f"listener {self.tls_port} 127.0.0.1",
                 f"cafile {self.folder / 'ca.pem'}", f"certfile {cert}", f"keyfile {key}"]
        (self.folder / "ca.pem").write_text(self.ca)
        if self.acl is not None:
            (self.folder / "acl").write_text(self.acl)
            lines.append(f"acl_file {self.folder / 'acl'}")
        (self.folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        binary = mosquitto_binary()
        assert binary, "mosquitto is not installed: run scripts/install-mosquitto"
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen([binary, "-c", str(self.folder / "mosquitto.conf")], stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_tail()}")
            if all(_listening(p) for p in (self.port, self.tls_port)):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto not listening after {START_S} s: {self.log_tail()}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): the broker saves its sessions, so the subscriber's survives a restart."""
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def log_tail(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Got:
    topic: str
    body: bytes
    properties: dict[str, str]
    content_type: str | None
    at: float = field(default_factory=time.time)  # when the subscriber got it


class Subscriber:
    """Every message published on the broker (`#`), read as the `reader` user over MQTT 5, in a
    session kept across broker restarts (QoS 1: what is published while it reconnects waits for it)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: list[Got] = []
        self.identifier = f"reader-{broker.port}"
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> "Subscriber":
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def _run(self) -> None:
        while True:
            try:
                session = Properties(PacketTypes.CONNECT)
                session.SessionExpiryInterval = 3600
                async with aiomqtt.Client("127.0.0.1", self.broker.port, username=READER, password=READER_PASSWORD,
                                          protocol=aiomqtt.ProtocolVersion.V5, timeout=5, identifier=self.identifier,
                                          clean_start=False, properties=session) as client:
                    await client.subscribe("#", qos=1)
                    self._ready.set()
                    async for m in client.messages:
                        props = m.properties
                        users = dict(getattr(props, "UserProperty", []) or []) if props else {}
                        content_type = getattr(props, "ContentType", None) if props else None
                        body = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                        self.messages.append(Got(str(m.topic), body, users, content_type))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)  # the broker is down: resubscribe when it is back

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

