"""Callback destinations (issue 9, point 4): every forbidden address class and notation refused at save
and at delivery, a name re-pointed after save refused at delivery, the operator's allow-list honoured.

No test here sends traffic outside 127.0.0.0/8. A refused destination is refused before any connection:
in-process a tripwire socket factory (where aiohttp would open the socket) proves it for every class;
on the stack a listener on 127.0.0.2, a loopback address the tests' allow-list (127.0.0.1/32) does not
cover, counts the connections that must not come.
"""
from __future__ import annotations

import asyncio
import ipaddress
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backhaul import settings as settings_module
from backhaul.destinations import DestinationPolicy, DestinationRefused, parse_ipv4, refusal_of
from backhaul.kafka import Out, make_producer, send_all
from backhaul.outbound import callback_session
from backhaul.topics import topic
from oss.app import bootstrap_root, create_app
from schemas.topics import FRAMES
from tests.api_support import Client, api, check, make_device_type, make_tenant  # noqa: F401  (fixture)
from tests.conftest import frame, publish_frames, wait_until
from workers.attempt import http_attempt

STRICT = DestinationPolicy.parse("")
TESTS = DestinationPolicy.parse("127.0.0.1/32")

# The networks the issue names, written out again here as the test's own oracle.
ORACLE_V4 = {  # first match wins: the broadcast address before 240.0.0.0/4
    "broadcast": ["255.255.255.255/32"], "unspecified": ["0.0.0.0/8"],
    "private": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    "carrier-grade NAT": ["100.64.0.0/10"], "loopback": ["127.0.0.0/8"], "link-local": ["169.254.0.0/16"],
    "reserved": ["192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
                 "240.0.0.0/4"],
    "multicast": ["224.0.0.0/4"],
}
ORACLE_V6 = {
    "unspecified": ["::/128"], "loopback": ["::1/128"], "unique-local": ["fc00::/7"], "link-local": ["fe80::/10"],
    "multicast": ["ff00::/8"], "reserved": ["2001:db8::/32", "100::/64"],
}
V4_NETS = [(ipaddress.ip_network(n), label) for label, nets in ORACLE_V4.items() for n in nets]
V6_NETS = [(ipaddress.ip_network(n), label) for label, nets in ORACLE_V6.items() for n in nets]

# (host as written in a URL, what the refusal must say)
FORBIDDEN = [
    # loopback, in every notation a resolver or browser accepts
    ("127.0.0.1", "a loopback address"), ("127.255.255.254", "a loopback address"),
    ("2130706433", "is 127.0.0.1, a loopback"), ("0x7f000001", "is 127.0.0.1, a loopback"),
    ("0X7F000001", "is 127.0.0.1, a loopback"), ("0177.0.0.1", "is 127.0.0.1, a loopback"),
    ("127.1", "is 127.0.0.1, a loopback"), ("127.0.1", "is 127.0.0.1, a loopback"),
    ("0x7f.1", "is 127.0.0.1, a loopback"), ("127.0.0.1.", "is 127.0.0.1, a loopback"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1 is a loopback"),   # full-width digits (IDNA)
    ("[::1]", "::1 is a loopback"), ("[0:0:0:0:0:0:0:1]", "::1 is a loopback"),
    ("[::ffff:127.0.0.1]", "(carrying 127.0.0.1) is a loopback"), ("[::ffff:7f00:1]", "(carrying 127.0.0.1)"),
    ("[::FFFF:7F00:1]", "(carrying 127.0.0.1) is a loopback"),
    ("localhost", "loopback name"), ("LOCALHOST", "loopback name"), ("localhost.", "loopback name"),
    ("api.localhost", "loopback name"), ("\u24dbocalhost", "loopback name"), ("ip6-localhost", "loopback name"),
    # unspecified
    ("0", "is 0.0.0.0, an unspecified"), ("0.0.0.0", "an unspecified address"), ("0x0", "an unspecified"),
    ("[::]", ":: is an unspecified"),
    # private
    ("10.0.0.5", "10.0.0.5 is a private address"), ("012.0.0.5", "is 10.0.0.5, a private"),
    ("167772165", "is 10.0.0.5, a private"), ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"), ("192.168.1.1", "a private address"),
    ("0xc0a80101", "is 192.168.1.1, a private"), ("3232235777", "is 192.168.1.1, a private"),
    ("[::ffff:10.0.0.5]", "(carrying 10.0.0.5) is a private"), ("[::ffff:a00:5]", "(carrying 10.0.0.5) is a private"),
    ("[64:ff9b::10.0.0.5]", "(carrying 10.0.0.5) is a private"), ("[2002:a00:5::1]", "(carrying 10.0.0.5)"),
    ("[fec0::1]", "a private address"), ("[64:ff9b:1::1]", "a private address"),
    ("db.internal", "a private name"), ("nas.home.arpa", "a private name"),
    # carrier-grade NAT
    ("100.64.0.1", "a carrier-grade NAT address"), ("100.127.255.255", "a carrier-grade NAT address"),
    # link-local and cloud metadata
    ("169.254.169.254", "link-local (cloud metadata)"), ("169.254.1.1", "a link-local address"),
    ("0xa9fea9fe", "is 169.254.169.254, a link-local"), ("2852039166", "is 169.254.169.254, a link-local"),
    ("[::ffff:169.254.169.254]", "(carrying 169.254.169.254) is a link-local"), ("[fe80::1]", "a link-local address"),
    ("metadata.google.internal", "cloud metadata name"), ("METADATA.GOOGLE.INTERNAL.", "cloud metadata name"),
    ("metadata", "cloud metadata name"), ("instance-data", "cloud metadata name"),
    ("printer.local", "a link-local name"),
    # unique-local
    ("[fc00::1]", "a unique-local address"), ("[fd12:3456::1]", "a unique-local address"),
    # multicast, broadcast
    ("224.0.0.1", "a multicast address"), ("239.255.255.250", "a multicast address"),
    ("[ff02::1]", "a multicast address"), ("[ff05::1:3]", "a multicast address"),
    ("255.255.255.255", "a broadcast address"), ("4294967295", "is 255.255.255.255, a broadcast"),
    # reserved
    ("240.0.0.1", "a reserved address"), ("192.0.0.1", "a reserved address"), ("192.0.2.1", "a reserved address"),
    ("198.18.0.1", "a reserved address"), ("198.51.100.1", "a reserved address"),
    ("203.0.113.1", "a reserved address"), ("[2001:db8::1]", "a reserved address"), ("[100::1]", "a reserved"),
    ("[2001::1]", "a reserved address"), ("[::7f00:1]", "a reserved address"), ("[4000::1]", "a reserved address"),
    # hosts that look like an address but are none: refused, never handed to a resolver to guess
    ("08.0.0.1", "looks like an IPv4 address"), ("1.2.3.4.5", "looks like an IPv4 address"),
    ("256.0.0.1", "out of range"), ("0x100000000", "out of range"), ("1.2.3.0x100", "out of range"),
    ("[fe80::1%25eth0]", "zone identifiers are not allowed"),
]
BAD_SCHEMES = ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "ws://example.com/"]
PUBLIC = ["8.8.8.8", "93.184.215.14", "134744072", "0x08080808", "010.010.010.010", "8.8.8.8.",
          "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]", "[64:ff9b::8.8.8.8]", "[2002:808:808::1]",
          "example.com", "EXAMPLE.COM.", "xn--bcher-kva.example", "hooks.customer.io"]


def url_of(host: str, port: int = 8080) -> str:
    return f"http://{host}:{port}/in?device={{device}}"


# Unit: the rule itself --------------------------------------------------------------------------
@pytest.mark.parametrize("host,expected", FORBIDDEN)
def test_every_forbidden_class_and_notation_is_refused(host, expected):
    reason = STRICT.check_url(url_of(host))
    assert reason is not None and expected in reason, reason


@pytest.mark.parametrize("url", BAD_SCHEMES)
def test_only_http_and_https(url):
    assert "scheme must be http or https" in STRICT.check_url(url)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_destinations_pass(host):
    assert STRICT.check_url(url_of(host)) is None
    assert STRICT.check_url(url_of(host).replace("http:", "https:")) is None


def test_a_remembered_verdict_is_the_verdict_and_the_memory_is_bounded():
    from backhaul import destinations

    hosts = [h for h, _ in FORBIDDEN] + PUBLIC + ["LocalHost", "bad..name", "[::1]"]
    policy = DestinationPolicy.parse("127.0.0.1/32")
    first = [policy.check_host(h) for h in hosts]
    again = [policy.check_host(h) for h in hosts]
    fresh = [DestinationPolicy.parse("127.0.0.1/32").check_host(h) for h in hosts]
    assert first == again == fresh
    assert policy.check_host("127.0.0.1") is None and STRICT.check_host("127.0.0.1") is not None, "per policy"
    for n in range(destinations._HOST_VERDICTS_MAX + 10):
        policy.check_host(f"h{n}.example.com")
    assert len(policy._verdicts) <= destinations._HOST_VERDICTS_MAX


def test_refusals_name_the_fix_and_never_the_credentials():
    reason = STRICT.check_url("http://alice:s3cret@10.0.0.5/in")
    assert reason == ("10.0.0.5 is a private address; callbacks may not target private networks "
                      "(the operator can allow it with BACKHAUL_CALLBACK_ALLOW_NETWORKS)")
    assert "s3cret" not in STRICT.check_url("http://alice:s3cret@localhost/in")


def test_allow_list_lets_exactly_its_networks_through_in_any_notation():
    for host in ("127.0.0.1", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "127.0.0.1."):
        assert TESTS.check_url(url_of(host)) is None, host
    for host in ("127.0.0.2", "0x7f000002", "[::1]", "10.0.0.5", "localhost"):
        assert TESTS.check_url(url_of(host)) is not None, host
    wide = DestinationPolicy.parse(" 10.0.0.0/8 , fd00::/8")
    assert wide.check_url(url_of("10.1.2.3")) is None and wide.check_url(url_of("[fd00::5]")) is None
    assert wide.check_url(url_of("192.168.0.1")) is not None
    # Names are refused by name: no network makes `localhost` or the metadata name acceptable.
    assert DestinationPolicy.parse("0.0.0.0/0,::/0").check_url(url_of("metadata.google.internal")) is not None


def test_a_bad_allow_list_is_named():
    with pytest.raises(ValueError, match="BACKHAUL_CALLBACK_ALLOW_NETWORKS: 'ten/8' is not a network"):
        DestinationPolicy.parse("127.0.0.1/32,ten/8")


def _label_v4(ip: ipaddress.IPv4Address) -> str | None:
    return next((label for net, label in V4_NETS if ip in net), None)


@st.composite
def ipv4_notations(draw, value: int) -> str:
    """`value` written as inet_aton accepts it: 1 to 4 parts, each decimal, octal or hex, maybe a trailing dot."""
    parts = draw(st.integers(1, 4))
    numbers = [(value >> (8 * (3 - i))) & 0xFF for i in range(parts - 1)]
    numbers.append(value & ((1 << (8 * (5 - parts))) - 1))
    texts = []
    for n in numbers:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        zeros = "0" * draw(st.integers(0, 2))
        texts.append({"dec": str(n), "oct": "0" + zeros + format(n, "o"), "hex": "0x" + zeros + format(n, "x"),
                      "HEX": "0X" + zeros + format(n, "X")}[style])
    return ".".join(texts) + draw(st.sampled_from(["", "."]))


@st.composite
def any_notation(draw, value: int) -> str:
    """An IPv4 address in an IPv4 notation or inside an IPv6 one (mapped, NAT64, 6to4)."""
    v4 = ipaddress.IPv4Address(value)
    hi, lo = value >> 16, value & 0xFFFF
    kind = draw(st.sampled_from(["v4", "v4", "mapped", "mapped-hex", "mapped-long", "nat64", "6to4"]))
    if kind == "v4":
        return draw(ipv4_notations(value))
    text = {"mapped": f"::ffff:{v4}", "mapped-hex": f"::ffff:{hi:x}:{lo:x}",
            "mapped-long": f"0:0:0:0:0:ffff:{hi:x}:{lo:x}",
            "nat64": f"64:ff9b::{v4}", "6to4": f"2002:{hi:x}:{lo:x}::{draw(st.integers(0, 0xFFFF)):x}"}[kind]
    return f"[{text.upper() if draw(st.booleans()) else text}]"


forbidden_v4 = st.sampled_from(V4_NETS).flatmap(
    lambda nl: st.integers(int(nl[0].network_address), int(nl[0].broadcast_address)))
public_v4 = st.integers(0, 2**32 - 1).filter(lambda v: _label_v4(ipaddress.IPv4Address(v)) is None)


@hsettings(max_examples=400, deadline=None)
@given(st.data(), forbidden_v4)
def test_property_any_encoding_of_a_forbidden_ipv4_is_refused_with_its_class(data, value):
    host = data.draw(any_notation(value))
    label = _label_v4(ipaddress.IPv4Address(value))
    reason = STRICT.check_url(url_of(host))
    assert reason is not None and f"{label} address" in reason.replace(" (cloud metadata)", ""), (host, reason)


@hsettings(max_examples=400, deadline=None)
@given(st.data(), public_v4)
def test_property_any_encoding_of_a_public_ipv4_is_accepted(data, value):
    host = data.draw(any_notation(value))
    assert STRICT.check_url(url_of(host)) is None, host
    if not host.startswith("["):
        assert parse_ipv4(host) == ipaddress.IPv4Address(value)


@hsettings(max_examples=300, deadline=None)
@given(st.sampled_from(V6_NETS).flatmap(lambda nl: st.tuples(
    st.just(nl[1]), st.integers(int(nl[0].network_address), int(nl[0].broadcast_address)))))
def test_property_forbidden_ipv6_is_refused(case):
    label, value = case
    ip = ipaddress.IPv6Address(value)
    reason = STRICT.check_url(url_of(f"[{ip.exploded}]"))
    assert reason is not None and f"{label} address" in reason, (ip, reason)


# In-process: the delivery client, with a tripwire where sockets are opened -------------------------
@pytest.fixture
def hosts_file(tmp_path, monkeypatch):
    """An operator hosts file for the delivery client, names resolved at every connection."""
    path = tmp_path / "hosts"
    path.write_text("")
    monkeypatch.setenv("BACKHAUL_CALLBACK_HOSTS_FILE", str(path))
    monkeypatch.setenv("BACKHAUL_CALLBACK_DNS_CACHE_S", "0")
    settings_module.settings.cache_clear()
    yield path
    settings_module.settings.cache_clear()


RESOLVED_TO = ["127.0.0.2", "10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
               "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1", "::1", "::", "fc00::1",
               "fe80::1", "ff02::1", "::ffff:10.0.0.5", "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "2001:db8::1"]


async def test_every_forbidden_destination_fails_at_send_time_before_any_connection(hosts_file):
    names = {f"n{i}.backhaul.test": address for i, address in enumerate(RESOLVED_TO)}
    hosts_file.write_text("".join(f"{address} {name}\n" for name, address in names.items())
                          + "10.0.0.9 mixed.backhaul.test\n127.0.0.1 mixed.backhaul.test\n")
    opened: list = []

    def tripwire(addr_info):
        opened.append(addr_info[4][:2])
        raise OSError("tripwire: a connection was about to be opened")

    session = callback_session(TESTS, socket_factory=tripwire)
    try:
        let_through = [host for host, _ in FORBIDDEN if TESTS.check_url(url_of(host)) is None]
        # Only spellings of 127.0.0.1, the allowed address, are let through.
        assert len(let_through) == 13 and all("127.0.0.1" in STRICT.check_url(url_of(h)) for h in let_through)
        urls = [url_of(host).format(device="1") for host, _ in FORBIDDEN if host not in let_through]
        urls += [f"http://{name}:8080/in" for name in names]
        for url in urls:
            outcome = await http_attempt(session, "POST", url, {}, b"x", None, 2.0)
            assert outcome.error_class == "destination", (url, outcome)
            assert outcome.status == 600 and outcome.info.startswith("destination refused: ")
            assert outcome.latency_ms < 250, (url, outcome.latency_ms)
        assert opened == [], "a refused destination reached the socket factory"
        resolved = await http_attempt(session, "GET", "http://n1.backhaul.test:8080/", {}, None, None, 2.0)
        assert resolved.info == ("destination refused: n1.backhaul.test resolves to 10.0.0.5, a private address; "
                                 "callbacks may not target private networks (the operator can allow it with "
                                 "BACKHAUL_CALLBACK_ALLOW_NETWORKS)")

        # The tripwire is live: an allowed destination reaches it, and a name's refused addresses are dropped.
        for url in ("http://127.0.0.1:9/", "http://mixed.backhaul.test:9/"):
            outcome = await http_attempt(session, "GET", url, {}, None, None, 2.0)
            assert outcome.error_class == "connect", outcome
        assert opened == [("127.0.0.1", 9), ("127.0.0.1", 9)]
    finally:
        await session.close()


async def test_refusal_is_found_behind_aiohttp_wrapping():
    refused = DestinationRefused("10.0.0.5 is a private address")
    wrapped = aiohttp.ClientConnectorDNSError(None, refused)  # what the connector makes of a resolver's OSError
    assert refusal_of(wrapped) is refused
    assert refusal_of(aiohttp.ClientConnectorError(None, OSError("refused"))) is None


# The API: checked at save -----------------------------------------------------------------------
async def _strict_server(api) -> tuple[TestServer, str]:
    server = TestServer(create_app(api.pool, callback_allow_networks=""), host="127.0.0.1")
    await server.start_server()
    return server, f"http://127.0.0.1:{server.port}/v2"


async def test_api_refuses_every_case_at_save_naming_url(api):
    t = await make_tenant(api, "Destinations")
    dt = await make_device_type(t.client, t)
    server, base = await _strict_server(api)
    strict = t.client.as_user(t.client.login, t.client.token)
    strict.base = base
    try:
        body = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "httpMethod": "POST", "enabled": True}
        for host, expected in FORBIDDEN:
            r = await strict.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of(host)})
            assert r.status == 400, (host, r.body)
            assert r.body["errors"][0]["field"] == "url" and expected in r.body["errors"][0]["message"], r.body
            assert r.body["message"].startswith("url: ")
        for url in BAD_SCHEMES:
            r = await strict.post(f"/device-types/{dt}/callbacks", {**body, "url": url})
            assert r.status == 400 and r.body["errors"][0]["field"] == "url", r.body
        batch = {"channel": "BATCH_URL", "callbackType": 0, "callbackSubtype": 2, "httpMethod": "POST", "enabled": True,
                 "linePattern": "{device}", "url": "http://169.254.169.254/latest/meta-data?b={batch}"}
        r = await strict.post(f"/device-types/{dt}/callbacks", batch)
        assert r.status == 400 and "link-local (cloud metadata)" in r.body["message"], r.body

        # A name is accepted as written (what it resolves to is checked at every delivery), a public address too.
        for host in ("rebind.backhaul.test", "8.8.8.8", "[2606:4700:4700::1111]"):
            check(await strict.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of(host)}), 201)

        # An update is checked the same way.
        cb = check(await strict.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of("example.com")}), 201)
        r = await strict.put(f"/device-types/{dt}/callbacks/{cb['id']}", {"url": url_of("0x7f000001")})
        assert r.status == 400 and r.body["errors"][0]["field"] == "url", r.body
    finally:
        await server.close()


async def test_api_allow_list_honoured_at_save(api):
    """The tests' API allows 127.0.0.1/32, explicitly; the same URL is refused without it."""
    t = await make_tenant(api, "Allowed")
    dt = await make_device_type(t.client, t)
    body = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "httpMethod": "GET", "enabled": True}
    for host in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"):
        check(await t.client.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of(host)}), 201)
    r = await t.client.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of("127.0.0.2")})
    assert r.status == 400 and "127.0.0.2 is a loopback address" in r.body["message"]
    server, base = await _strict_server(api)
    try:
        strict = t.client.as_user(t.client.login, t.client.token)
        strict.base = base
        r = await strict.post(f"/device-types/{dt}/callbacks", {**body, "url": url_of("127.0.0.1")})
        assert r.status == 400 and r.body["errors"][0]["field"] == "url", r.body
    finally:
        await server.close()


# The real stack: checked at every delivery --------------------------------------------------------
class Trap:
    """A TCP listener on 127.0.0.2 that counts connections (none must come)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self, port: int) -> "Trap":
        def count(reader, writer):
            self.connections += 1
            writer.close()
        self.server = await asyncio.start_server(count, "127.0.0.2", port)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


ONE_ATTEMPT = {"BACKHAUL_RETRY_SCHEDULE_S": "600", "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_CALLBACK_TIMEOUT_S": "2"}


# Answered attempts (a send is on the record from the moment it goes, status NULL until its answer).
ATTEMPTS = "SELECT * FROM callback_attempts WHERE callback_id = $1 AND status IS NOT NULL ORDER BY time"


async def test_name_repointed_after_save_is_refused_at_delivery(isolated, workers, receiver, tmp_path):
    """Saved through the API while the name points at the receiver; re-pointed at 127.0.0.2, it is refused.

    Every connection is checked when it is opened; a kept-alive one goes on to the address it was opened
    to (checked then). The receiver closes its connections here, so each delivery opens (and resolves) anew.
    """
    async def close_each_connection(request, rec):
        response = web.Response(text="ok")
        response.force_close()
        return response
    receiver.behaviour = close_each_connection
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 rebind.backhaul.test\n")
    trap = await Trap().start(receiver.port)
    worker = workers("relay,ingest,router,delivery,store", isolated, BACKHAUL_CALLBACK_HOSTS_FILE=str(hosts),
                     BACKHAUL_CALLBACK_DNS_CACHE_S="0", BACKHAUL_ADVANCED_WINDOW_S="2", **ONE_ATTEMPT)
    await worker.wait_ready()
    from backhaul import db
    pool = await db.create_pool(min_size=1, max_size=3)
    server = TestServer(create_app(pool), host="127.0.0.1")  # the allow-list comes from the test environment
    await server.start_server()
    session = aiohttp.ClientSession()
    producer = make_producer()
    await producer.start()
    try:
        await pool.execute("INSERT INTO base_stations(id, name, lat, lng) VALUES ('0B01', 'station', 43.6, 1.4)")
        group, login, token = await bootstrap_root(pool, "root")
        c = Client(session, f"http://127.0.0.1:{server.port}/v2", login, token)
        contract = check(await c.post("/contract-infos/", {"name": "c", "groupId": group, "maxTokens": 0}), 201)["id"]
        dtype = check(await c.post("/device-types/", {"name": "m", "groupId": group, "contractId": contract}),
                      201)["id"]
        cb = check(await c.post(f"/device-types/{dtype}/callbacks", {
            "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "httpMethod": "GET",
            "url": f"http://rebind.backhaul.test:{receiver.port}/up?device={{device}}&seq={{seqNumber}}"}), 201)["id"]
        check(await c.post("/devices/", {"id": "BEEF01", "name": "m", "pac": "00" * 8, "deviceTypeId": dtype}), 201)

        seq = 0

        async def delivered() -> bool:
            nonlocal seq
            if receiver.requests:
                return True
            await send_all(producer, [Out(topic(FRAMES), b"BEEF01",
                                          orjson.dumps(frame("BEEF01", seq, station="0B01")))])
            seq += 1
            return False
        await wait_until(delivered, 30, "the first callback through the name", interval=0.3)
        assert receiver.requests[0].query["device"] == "BEEF01"

        hosts.write_text("127.0.0.2 rebind.backhaul.test\n")  # re-pointed after save
        repointed_seq = seq + 5
        await publish_frames([frame("BEEF01", repointed_seq, station="0B01")])

        async def refused():
            return [r for r in await pool.fetch(ATTEMPTS, cb) if r["error_class"] == "destination"]
        rows = await wait_until(refused, 30, "the refused attempt")
        assert rows[0]["status"] == 600 and rows[0]["latency_ms"] < 250, dict(rows[0])
        assert rows[0]["info"] == (
            "destination refused: rebind.backhaul.test resolves to 127.0.0.2, a loopback address; callbacks may "
            "not target loopback networks (the operator can allow it with BACKHAUL_CALLBACK_ALLOW_NETWORKS)")
        assert rows[0]["device_id"] == "BEEF01"
        assert trap.connections == 0
        assert str(repointed_seq) not in [r.query["seq"] for r in receiver.requests]
    finally:
        await producer.stop()
        await session.close()
        await server.close()
        await pool.close()
        await trap.stop()


async def test_without_the_allow_list_the_receivers_address_is_refused(pipeline, receiver):
    """The same 127.0.0.1 receiver every test uses, with the allow-list emptied: URL and BATCH_URL refused,
    nothing sent, and the circuit breaker (2 failures) stays closed: our rule is not the endpoint failing."""
    pipe = await pipeline([
        {"id": "url", "url": receiver.url + "/in?d={device}", "http_method": "GET"},
        {"id": "batch", "channel": "BATCH_URL", "http_method": "POST", "url": receiver.url + "/batch",
         "line_pattern": "{device};{data}"},
    ], env={"BACKHAUL_CALLBACK_ALLOW_NETWORKS": "", "BACKHAUL_RETRY_SCHEDULE_S": "0.2,0.2",
            "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_BREAKER_FAILURES": "2", "BACKHAUL_BATCH_WINDOW_S": "0.2"})
    await publish_frames([frame(pipe.devices[0], 1, station=pipe.stations[0], data="01")])

    async def all_three():
        rows = {cb: await pipe.fetch(ATTEMPTS, cb) for cb in ("url", "batch")}
        return rows if all(len(r) == 3 for r in rows.values()) else None
    rows = await wait_until(all_three, 30, "three attempts of each callback")
    for cb, attempts_of_cb in rows.items():
        assert {r["error_class"] for r in attempts_of_cb} == {"destination"}, (cb, [dict(r) for r in attempts_of_cb])
        assert "127.0.0.1 is a loopback address" in attempts_of_cb[0]["info"]
    assert receiver.requests == []
    exported = await pipe.worker.metrics()
    assert 'backhaul_circuits{state="open"} 0.0' in exported and 'backhaul_circuits{state="closed"} 1.0' in exported
    dead = await pipe.wait_rows("SELECT * FROM undelivered_callbacks", 2)
    assert {r["callback_id"] for r in dead} == {"url", "batch"}


async def test_literal_notations_names_and_redirects_refused_at_delivery(pipeline, receiver, make_receiver):
    """Rows that skipped the API's check (saved before the rule, or by SQL) are refused when sent, in any
    notation; the allow-list (127.0.0.1/32) is honoured; a redirect is never followed."""
    trap = await Trap().start(receiver.port)
    p = receiver.port

    async def to_the_trap(request, rec):
        return web.Response(status=302, headers={"Location": f"http://127.0.0.2:{p}/stolen"})
    redirect = await make_receiver(to_the_trap)
    refused = {"hex": f"http://0x7f000002:{p}/x", "decimal": f"http://2130706434:{p}/x",
               "short": f"http://127.2:{p}/x", "mapped": f"http://[::ffff:127.0.0.2]:{p}/x",
               "mapped-hex": f"http://[::ffff:7f00:2]:{p}/x", "octal": f"http://0177.0.0.2:{p}/x",
               "name": f"http://localhost:{p}/x", "sub": f"http://api.localhost:{p}/x"}
    allowed = {"allowed": f"http://127.0.0.1:{p}/ok?d={{device}}"}
    callbacks = [{"id": k, "url": u, "http_method": "GET"} for k, u in {**refused, **allowed}.items()]
    callbacks.append({"id": "redirect", "url": redirect.url + "/r", "http_method": "GET"})
    pipe = await pipeline(callbacks, env=ONE_ATTEMPT)
    started = time.monotonic()
    await publish_frames([frame(pipe.devices[0], 1, station=pipe.stations[0], data="02")])
    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL", len(callbacks))
    by_id = {r["callback_id"]: r for r in rows}
    for cb in refused:
        assert by_id[cb]["error_class"] == "destination", dict(by_id[cb])
        assert by_id[cb]["latency_ms"] < 250
    assert "127.0.0.2, a loopback address" in by_id["hex"]["info"]
    assert "localhost is a loopback name" in by_id["name"]["info"]
    assert by_id["allowed"]["status"] == 200 and [r.path for r in receiver.requests] == ["/ok"]
    assert by_id["redirect"]["status"] == 302 and by_id["redirect"]["error_class"] == "invalid_answer"
    assert trap.connections == 0, "a refused destination or a redirect reached 127.0.0.2"
    assert time.monotonic() - started < 30
    await trap.stop()


def test_the_default_is_strict_and_the_demo_opts_in(monkeypatch):
    """No allow-list by default; `backhaul up` adds 127.0.0.1/32 (its receiver) to the operator's list."""
    from program.cli import _demo_env

    monkeypatch.delenv("BACKHAUL_CALLBACK_ALLOW_NETWORKS", raising=False)
    assert settings_module.Settings.from_env().callback_allow_networks == ""
    assert DestinationPolicy.parse(settings_module.Settings.from_env().callback_allow_networks) == STRICT
    monkeypatch.setenv("BACKHAUL_CALLBACK_ALLOW_NETWORKS", "10.8.0.0/16")
    settings_module.settings.cache_clear()
    try:
        assert _demo_env() == {"BACKHAUL_CALLBACK_ALLOW_NETWORKS": "10.8.0.0/16,127.0.0.1/32"}
    finally:
        settings_module.settings.cache_clear()
