"""The HTTP client of every channel that opens a connection to a customer: the destination rule enforced.

Two checks, both before any connection is attempted:
- a client middleware checks each request's URL (scheme, literal address in
  any notation, forbidden names): aiohttp does not call the resolver for a
  host that looks like an address, so this is where those are caught;
- a resolver wrapping the real one drops every resolved address the rule
  refuses and fails the lookup when none is left, so a name re-pointed at an
  inside address after the callback was saved is refused at delivery.
Both raise `DestinationRefused`; `backhaul.destinations.refusal_of` finds it
behind aiohttp's wrapping. Redirects are the caller's to refuse (delivery
never follows them).

`BACKHAUL_CALLBACK_HOSTS_FILE` names a hosts(5)-format file whose entries are
answered before DNS (re-read when it changes): an operator can pin a
customer's name, and the tests re-point a name without touching the
machine's resolver. Its addresses pass the same rule as DNS answers.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from backhaul.destinations import DestinationPolicy, DestinationRefused, shown
from backhaul.settings import settings


class HostsFileResolver(AbstractResolver):
    """Answers names listed in a hosts(5) file, asks `inner` for the rest."""

    def __init__(self, path: Path, inner: AbstractResolver) -> None:
        self.path = path
        self.inner = inner
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, list[str]] = {}

    def _load(self) -> dict[str, list[str]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            entries: dict[str, list[str]] = {}
            for line in self.path.read_text().splitlines():
                address, *names = line.split("#", 1)[0].split()
                if not names:
                    continue
                for name in names:
                    entries.setdefault(name.lower().rstrip("."), []).append(address)
            self._stamp, self._entries = stamp, entries
        return self._entries

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = self._load().get(host.lower().rstrip("."))
        if addresses is None:
            return await self.inner.resolve(host, port, family)
        out: list[ResolveResult] = []
        for address in addresses:
            af = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, af):
                out.append(ResolveResult(hostname=host, host=address, port=port, family=af, proto=0,
                                         flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV))
        if not out:
            raise OSError(f"{host}: no address of the requested family in {self.path}")
        return out

    async def close(self) -> None:
        await self.inner.close()


class GuardedResolver(AbstractResolver):
    """Resolves with `inner`, then keeps only the addresses the policy allows."""

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver) -> None:
        self.policy = policy
        self.inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        refusal = self.policy.check_host(host)
        if refusal is not None:
            raise DestinationRefused(refusal)
        kept, refused = [], []
        for answer in await self.inner.resolve(host, port, family):
            try:
                ip = ipaddress.ip_address(answer["host"])
            except ValueError:
                refused.append(f"{host} resolves to {answer['host']!r}, which is not an address")
                continue
            reason = self.policy.check_address(ip, f"{host} resolves to {shown(ip)},")
            if reason is None:
                kept.append(answer)
            else:
                refused.append(reason)
        if not kept:
            raise DestinationRefused(refused[0] if refused else f"{host} resolves to no address")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def destination_middleware(policy: DestinationPolicy) -> aiohttp.ClientMiddlewareType:
    """A client middleware refusing a request whose URL the policy refuses (before connecting)."""

    async def middleware(request: aiohttp.ClientRequest,
                         handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        refusal = policy.check_url(request.url)
        if refusal is not None:
            raise DestinationRefused(refusal)
        return await handler(request)

    return middleware


def policy_from_settings() -> DestinationPolicy:
    """The destination rule with the operator's BACKHAUL_CALLBACK_ALLOW_NETWORKS."""
    return DestinationPolicy.parse(settings().callback_allow_networks)


def guarded_resolver(policy: DestinationPolicy) -> GuardedResolver:
    """The resolver of callback connections: the operator's hosts file (if any), then the rule on every address.
    aiohttp skips resolvers for literal addresses: check those with `policy.check_url` first."""
    inner: AbstractResolver = aiohttp.ThreadedResolver()
    if settings().callback_hosts_file:
        inner = HostsFileResolver(Path(settings().callback_hosts_file), inner)
    return GuardedResolver(policy, inner)


def callback_session(policy: DestinationPolicy | None = None, *,
                     socket_factory: Callable[..., socket.socket] | None = None) -> aiohttp.ClientSession:
    """The session deliveries go through: the rule at request and after resolution.

    Must be created inside the running loop. `socket_factory` lets a test put a
    tripwire where a connection would be opened.
    """
    s = settings()
    policy = policy or policy_from_settings()
    ttl = s.callback_dns_cache_s
    connector = aiohttp.TCPConnector(limit=0, resolver=guarded_resolver(policy),
                                     use_dns_cache=ttl > 0,
                                     # aiohttp annotates an int but keeps float seconds (its _DNSCacheTable)
                                     ttl_dns_cache=ttl if ttl > 0 else None,  # type: ignore[arg-type]
                                     socket_factory=socket_factory)
    return aiohttp.ClientSession(connector=connector, auto_decompress=True, raise_for_status=False,
                                 middlewares=(destination_middleware(policy),))
