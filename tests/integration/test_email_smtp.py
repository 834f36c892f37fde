"""E-mail delivery against a real SMTP server (aiosmtpd) on 127.0.0.1."""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller

from workers.mail import AlertLimiter, EmailDeliveryError, send_email


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every mail it receives."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    inbox = Inbox(refuse={"nobody@example.com"})
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


async def test_mail_arrives_with_subject_and_body(smtp):
    controller, inbox = smtp
    body = "Device 1A2B sent 0102 at 1700000000.\nSecond line, accents: é."
    await send_email(controller.hostname, controller.port, "backhaul@example.com", "ops@example.com",
                     "Callback for 1A2B", body)
    assert len(inbox.mails) == 1
    recipients, message = inbox.mails[0]
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == "Callback for 1A2B"
    assert message["From"] == "backhaul@example.com"
    assert message["To"] == "ops@example.com"
    assert message.get_content().replace("\r\n", "\n").rstrip("\n") == body


async def test_several_recipients_and_subject_line_breaks_folded(smtp):
    controller, inbox = smtp
    await send_email(controller.hostname, controller.port, "backhaul@example.com",
                     "a@example.com, b@example.com", "two\r\nlines", "hello")
    recipients, message = inbox.mails[0]
    assert sorted(recipients) == ["a@example.com", "b@example.com"]
    assert message["Subject"] == "two lines"


async def test_refused_recipient_is_an_error(smtp):
    controller, inbox = smtp
    with pytest.raises(EmailDeliveryError, match="nobody@example.com"):
        await send_email(controller.hostname, controller.port, "backhaul@example.com",
                         "nobody@example.com", "s", "b")
    with pytest.raises(EmailDeliveryError, match="refused: nobody@example.com"):
        await send_email(controller.hostname, controller.port, "backhaul@example.com",
                         "ops@example.com, nobody@example.com", "s", "b")
    assert [r for r, _ in inbox.mails] == [["ops@example.com"]]


async def test_no_server_is_a_clear_error():
    port = free_port()
    with pytest.raises(EmailDeliveryError, match=f"SMTP 127.0.0.1:{port}"):
        await send_email("127.0.0.1", port, "backhaul@example.com", "ops@example.com", "s", "b", timeout=2)


async def test_silent_server_times_out():
    async def silent(reader, writer):  # accepts, never greets
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(EmailDeliveryError, match="Timeout"):
            await send_email("127.0.0.1", port, "backhaul@example.com", "ops@example.com", "s", "b", timeout=0.3)
    finally:
        server.close()


def test_alert_limiter_one_per_key_per_window():
    limiter = AlertLimiter(per_hours=1.0)
    key = ("devicetype-1", "callback-1")
    assert limiter.should_send(key, now=0)
    assert not limiter.should_send(key, now=3599)
    assert limiter.should_send(("devicetype-1", "callback-2"), now=10)
    assert limiter.should_send(key, now=3600)
    assert not limiter.should_send(key, now=3601)


def test_alert_limiter_stays_small():
    limiter = AlertLimiter(per_hours=1.0)
    for n in range(5000):
        limiter.should_send(n, now=n * 10.0)
    assert len(limiter._last) < 2100
    assert not limiter.should_send(4999, now=49990.0 + 1)
