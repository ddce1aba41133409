"""Requests to addresses people type in (webhooks): only to the public internet, never back inside.

Two checks, because a name can resolve differently later (DNS rebinding): :func:`check_url` when the
address is saved (scheme, no credentials, and every address the name resolves to is public), and
:func:`guarded_session` when it is called — its connections check the name's addresses again before
connecting, and the peer's address after the connect, before a byte is sent: none may be loopback,
private, link-local, multicast, reserved or unspecified (also as IPv4-mapped IPv6). Redirects are not followed and no proxy from the environment is used.
Networks named in ``allowed`` (an operator's explicit choice) pass.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
MAX_URL = 2000


class UnsafeURL(ValueError):
    """The address may not be called; ``str(exc)`` says why, to a person."""


def networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8 127.0.0.1/32"`` → networks (raises ValueError on a bad one)."""
    return tuple(ipaddress.ip_network(part, strict=False) for part in text.replace(",", " ").split())


def address_problem(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why a request must not go to ``address`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == network.version and address in network for network in allowed):
        return None
    for problem, found in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("an unspecified address", address.is_unspecified),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
        ("not a global address", not address.is_global),
    ):
        if found:
            return f"{address} is {problem}"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_url(
    url: str,
    *,
    allow_http: bool,
    allowed: Sequence[Network] = (),
    resolve: Resolver = system_resolver,
) -> str:
    """The URL, cleaned, if a webhook may call it; :class:`UnsafeURL` with the reason otherwise."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise UnsafeURL(f"give an address of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("this is not a web address") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeURL("only https:// addresses" if not allow_http else "only http:// or https:// addresses")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("an address with a user name or password in it is not accepted")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the address has no host")
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        found = [str(literal)] if literal else list(resolve(host, port or 443))
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"{host} cannot be resolved") from exc
    if not found:
        raise UnsafeURL(f"{host} cannot be resolved")
    for text in found:
        problem = address_problem(ipaddress.ip_address(text.split("%")[0]), allowed)
        if problem:
            raise UnsafeURL(f"{host} leads to {problem}" if not literal else problem)
    return url


class RefusedAddress(OSError):
    """A connection reached an address it must not (found after the connect, before sending)."""


def _checked(sock: socket.socket, allowed: Sequence[Network]) -> socket.socket:
    peer = sock.getpeername()[0]
    problem = address_problem(ipaddress.ip_address(str(peer).split("%")[0]), allowed)
    if problem:
        sock.close()
        raise RefusedAddress(problem)
    return sock


def _resolved_safely(host: str, port: int, allowed: Sequence[Network]) -> None:
    """Before connecting: every address the name has now must be allowed (the peer is checked after)."""
    try:
        found = system_resolver(host, port)
    except OSError:
        return  # the connect fails on its own, with the resolver's own error
    for text in found:
        problem = address_problem(ipaddress.ip_address(text.split("%")[0]), allowed)
        if problem:
            raise RefusedAddress(problem)


def _pools(allowed: Sequence[Network]) -> dict[str, Any]:
    class Plain(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            _resolved_safely(self._dns_host, self.port, allowed)
            return _checked(super()._new_conn(), allowed)

    class Secure(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            _resolved_safely(self._dns_host, self.port, allowed)
            return _checked(super()._new_conn(), allowed)

    class PlainPool(urllib3.HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allowed: Sequence[Network]) -> None:
        self.allowed = tuple(allowed)
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pools(self.allowed)


def guarded_session(allowed: Sequence[Network] = ()) -> requests.Session:
    """A requests session that refuses to connect inside (see the module's docstring)."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the check is of the real peer
    adapter = _GuardedAdapter(allowed)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def refusal_in(exc: BaseException) -> str | None:
    """The guard's reason somewhere in a requests exception's chain, if it was the guard that refused."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RefusedAddress):
            return str(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending += [item for item in linked if isinstance(item, BaseException)]
    return None
