"""E-mail delivery against a real SMTP server (aiosmtpd) on 127.0.0.1."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import free_port
from workers.mail import AlertLimiter, EmailDeliveryError, send_email


async def test_mail_arrives_with_subject_and_body(smtp):
    body = "Device 1A2B sent 0102 at 1700000000.\nSecond line, accents: é."
    await send_email(smtp.host, smtp.port, "backhaul@example.com", "ops@example.com",
                     "Callback for 1A2B", body)
    assert len(smtp.inbox.mails) == 1
    recipients, message = smtp.inbox.mails[0]
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == "Callback for 1A2B"
    assert message["From"] == "backhaul@example.com"
    assert message["To"] == "ops@example.com"
    assert message.get_content().replace("\r\n", "\n").rstrip("\n") == body


async def test_several_recipients_and_subject_line_breaks_folded(smtp):
    await send_email(smtp.host, smtp.port, "backhaul@example.com",
                     "a@example.com, b@example.com", "two\r\nlines", "hello")
    recipients, message = smtp.inbox.mails[0]
    assert sorted(recipients) == ["a@example.com", "b@example.com"]
    assert message["Subject"] == "two lines"


async def test_refused_recipient_is_an_error(smtp):
    with pytest.raises(EmailDeliveryError, match="nobody@example.com"):
        await send_email(smtp.host, smtp.port, "backhaul@example.com",
                         "nobody@example.com", "s", "b")
    with pytest.raises(EmailDeliveryError, match="refused: nobody@example.com"):
        await send_email(smtp.host, smtp.port, "backhaul@example.com",
                         "ops@example.com, nobody@example.com", "s", "b")
    assert [r for r, _ in smtp.inbox.mails] == [["ops@example.com"]]


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
