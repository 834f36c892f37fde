"""Where a callback may connect: the destination rule, checked at save and at every delivery.

By default a callback may not target loopback, link-local (169.254.169.254 and
the cloud metadata names included), private, carrier-grade NAT, unique-local,
multicast, broadcast, unspecified or otherwise reserved addresses, nor names
that always mean this machine or its cloud (`localhost`, `*.localhost`,
`metadata.google.internal`, ...). Only networks listed in
`BACKHAUL_CALLBACK_ALLOW_NETWORKS` (CIDRs) are let through despite this.

The forbidden networks are listed here explicitly rather than taken from
`ipaddress`'s flags, whose meaning has moved between Python versions;
`ipaddress.is_global` is only a second opinion that can refuse more. IPv6
addresses that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
`64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address; IPv6
outside global unicast `2000::/3` is refused.

Hosts are read the way the HTTP client (aiohttp on yarl) and the C resolver
read them, so no spelling slips through: yarl applies IDNA (UTS 46) mapping
and lower-cases; a host that ends in a number is an IPv4 address in the
inet_aton / WHATWG forms (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`,
`0`, a trailing dot), and one that ends in a number but is no valid address is
refused as invalid rather than handed to a resolver that might guess.

This module only decides; `backhaul.outbound` enforces it in the HTTP client.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "BACKHAUL_CALLBACK_ALLOW_NETWORKS"

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match wins (255.255.255.255 before 240/4).
FORBIDDEN_V4: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.169.254/32"), "link-local (cloud metadata)"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),        # IETF protocol assignments
    (_V4("192.0.2.0/24"), "reserved"),        # documentation
    (_V4("192.88.99.0/24"), "reserved"),      # 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved"),       # benchmarking
    (_V4("198.51.100.0/24"), "reserved"),     # documentation
    (_V4("203.0.113.0/24"), "reserved"),      # documentation
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

FORBIDDEN_V6: tuple[tuple[IPNetwork, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "private"),       # local-use NAT64
    (_V6("::/8"), "reserved"),                # IPv4-compatible, IPv4-translated, ...
    (_V6("100::/64"), "reserved"),            # discard-only
    (_V6("2001::/23"), "reserved"),           # IETF protocol assignments, Teredo 2001::/32
    (_V6("2001:db8::/32"), "reserved"),       # documentation
    (_V6("3fff::/20"), "reserved"),           # documentation
    (_V6("5f00::/16"), "reserved"),           # SRv6 SIDs
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),            # site-local (deprecated)
    (_V6("ff00::/8"), "multicast"),
)
MAPPED = _V6("::ffff:0:0/96")
NAT64 = _V6("64:ff9b::/96")
SIX_TO_FOUR = _V6("2002::/16")
GLOBAL_UNICAST = _V6("2000::/3")

# Names refused whatever they resolve to (after lower-casing and dropping trailing dots).
FORBIDDEN_NAMES = {
    "localhost": "loopback", "localhost.localdomain": "loopback", "ip6-localhost": "loopback",
    "ip6-loopback": "loopback",
    "metadata": "cloud metadata", "metadata.google.internal": "cloud metadata", "metadata.goog": "cloud metadata",
    "instance-data": "cloud metadata", "instance-data.ec2.internal": "cloud metadata",
}
FORBIDDEN_SUFFIXES = (
    (".localhost", "loopback"),     # RFC 6761
    (".internal", "private"),       # ICANN private-use top-level domain
    (".local", "link-local"),       # multicast DNS
    (".home.arpa", "private"),      # RFC 8375
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class InvalidHost(ValueError):
    """A host that is neither a valid address nor a valid name."""


class DestinationRefused(OSError):
    """A destination the rule refuses; `reason` says which and why (no credentials in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ipv4_number(part: str) -> int:
    """One dotted part as inet_aton reads it: 0x.. hex, 0.. octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        if not digits:
            return 0
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits.isascii() or not digits.isalnum():
        raise InvalidHost(f"{part!r} is not a number")
    try:
        return int(digits, base)
    except ValueError:
        raise InvalidHost(f"{part!r} is not a number") from None


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last and last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in last[2:])


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address `host` means in any inet_aton / WHATWG notation, None for a name.

    Raises InvalidHost for a host that ends in a number but is no address.
    """
    if not host or not _ends_in_number(host):
        return None
    parts = host.split(".")
    if parts[-1] == "":
        parts.pop()
    if len(parts) > 4 or any(p == "" for p in parts):
        raise InvalidHost(f"{host} looks like an IPv4 address but is not one")
    try:
        numbers = [_ipv4_number(p) for p in parts]
    except InvalidHost:
        raise InvalidHost(f"{host} looks like an IPv4 address but is not one") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise InvalidHost(f"{host} looks like an IPv4 address but is out of range")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> IPAddress | None:
    """The address a literal host means (IPv6 with or without brackets, IPv4 in any notation), None for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        if "%" in text:
            raise InvalidHost(f"{host}: IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidHost(f"{host} is not a valid IPv6 address") from None
    return parse_ipv4(text)


def _classify_v4(ip: ipaddress.IPv4Address) -> str | None:
    for net, label in FORBIDDEN_V4:
        if ip in net:
            return label
    return None if ip.is_global else "reserved"


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip in MAPPED:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return ip.sixtofour
    return None


def address_class(ip: IPAddress) -> str | None:
    """Why `ip` is forbidden ("private", "loopback", ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    inner = embedded_ipv4(ip)
    if inner is not None:
        return _classify_v4(inner)
    for net, label in FORBIDDEN_V6:
        if ip in net:
            return label
    if ip not in GLOBAL_UNICAST or not ip.is_global:
        return "reserved"
    return None


def name_class(name: str) -> str | None:
    """Why a host name is forbidden by name, or None."""
    name = name.lower().rstrip(".")
    if name in FORBIDDEN_NAMES:
        return FORBIDDEN_NAMES[name]
    for suffix, label in FORBIDDEN_SUFFIXES:
        if name.endswith(suffix) or name == suffix[1:]:
            return label
    return None


def shown(ip: IPAddress) -> str:
    """An address as error texts show it, with the IPv4 address it carries."""
    inner = embedded_ipv4(ip)
    return str(ip) if inner is None else f"{ip} (carrying {inner})"


def _article(label: str) -> str:
    return "an" if label[0] in "aeiou" and not label.startswith("uni") else "a"


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (`127.0.0.1/32,10.1.0.0/16`); a ValueError names the bad item."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{ALLOW_SETTING}: {item!r} is not a network (write a CIDR such as 127.0.0.1/32)") \
                from None
    return tuple(out)


_HOST_VERDICTS_MAX = 4096  # hosts whose verdict a policy remembers (the rule is pure: same host, same verdict)
_UNSEEN = object()


@dataclass(frozen=True)
class DestinationPolicy:
    """The destination rule with the operator's allowed networks."""

    allow: tuple[IPNetwork, ...] = ()
    # check_host's verdicts: every callback request asks (a network walk each, 6 % of the delivery
    # worker's CPU before it was remembered: bench/README.md, issue 19).
    _verdicts: dict[str, str | None] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def parse(cls, allow_networks: str) -> "DestinationPolicy":
        return cls(parse_networks(allow_networks))

    def allowed(self, ip: IPAddress) -> bool:
        """True when the operator allowed `ip` (or the IPv4 address it carries)."""
        inner = embedded_ipv4(ip)
        return any(ip in net or (inner is not None and inner in net) for net in self.allow)

    def check_address(self, ip: IPAddress, subject: str | None = None) -> str | None:
        """Why a connection to `ip` is refused, or None.

        `subject` starts the sentence (say "x.example resolves to 10.0.0.5,"); by default the address.
        """
        label = address_class(ip)
        if label is None or self.allowed(ip):
            return None
        return (f"{subject or shown(ip) + ' is'} {_article(label)} {label} address; callbacks may not target "
                f"{label} networks (the operator can allow it with {ALLOW_SETTING})")

    def check_host(self, host: str) -> str | None:
        """Why a literal host (address in any notation, or name) is refused, or None.

        A name that passes may still resolve to a refused address: see `check_address`.
        """
        verdict = self._verdicts.get(host, _UNSEEN)
        if verdict is _UNSEEN:
            if len(self._verdicts) >= _HOST_VERDICTS_MAX:
                self._verdicts.clear()
            verdict = self._verdicts[host] = self._judge_host(host)
        return verdict  # type: ignore[return-value]  # a str or None once judged

    def _judge_host(self, host: str) -> str | None:
        host = host.lower()
        try:
            ip = literal_address(host)
        except InvalidHost as exc:
            return f"{exc}"
        if ip is not None:
            return self.check_address(ip, None if host.strip("[]") == str(ip) else f"{host} is {shown(ip)},")
        name = host.rstrip(".")
        if not name or not set(name) <= _NAME_CHARS or ".." in name:
            return f"{host!r} is not a valid host name"
        label = name_class(name)
        if label is not None:
            return (f"{name} is {_article(label)} {label} name; callbacks may not target it "
                    f"(use an address the operator allows with {ALLOW_SETTING})")
        return None

    def check_url(self, url: str | URL) -> str | None:
        """Why a callback URL is refused (scheme, host), or None. Reads the host as aiohttp will."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
            scheme, host = parsed.scheme, parsed.raw_host
        except (ValueError, TypeError):
            return "not a valid URL"
        if scheme not in ("http", "https"):
            return f"scheme must be http or https, got {scheme!r}"
        if not host:
            return "host missing"
        return self.check_host(host)


def refusal_of(exc: BaseException | None) -> DestinationRefused | None:
    """The DestinationRefused behind an exception (aiohttp wraps the resolver's in `os_error`), if any."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DestinationRefused):
            return exc
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None
