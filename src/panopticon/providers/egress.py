"""Where a provider call may go.

Every outbound call from a provider adapter obeys one :class:`EgressPolicy`:

- the URL is ``http`` or ``https``, with a host;
- link-local addresses (169.254.0.0/16, fe80::/10), cloud metadata endpoints
  (169.254.169.254, fd00:ec2::254, 100.100.100.200, metadata.google.internal), the
  unspecified address and multicast are always refused;
- loopback and private ranges (127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, ::1,
  fc00::/7) only when the operator allows them (``PANOPTICON_ALLOW_PRIVATE_URLS``, on by
  default: a laptop talks to Ollama and the mock on 127.0.0.1).

The addresses checked are the ones connected to: :func:`guarded_resolver` resolves a host
name, refuses it if any of its addresses is refused, and hands aiohttp exactly the addresses
it checked, so a name that resolves to a public address when validated and to
169.254.169.254 when called (DNS rebinding) is still refused. The SDKs that speak httpx
(anthropic, google-genai) get :func:`guarded_httpx_client`, whose transport does the same:
it resolves and checks the host, then connects to the checked address (TLS still verifies
the host name). Redirects are never followed (adapters pass ``allow_redirects=False``, the
httpx client ``follow_redirects=False``), so an endpoint cannot send the request elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

__all__ = ["EgressPolicy", "EgressRefused", "guarded_httpx_client", "guarded_resolver"]

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # link-local, AWS/GCP/Azure metadata at 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this host": reaches loopback services on Linux
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "240.0.0.0/4",  # reserved
    )
)
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT, often internal
        "::1/128",
        "fc00::/7",
    )
)


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: mapped (::ffff:a.b.c.d), compatible
    (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::), so 127.0.0.1 and
    169.254.169.254 are refused in every form."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class EgressRefused(OSError):
    """A provider address the policy refuses (raised from the resolver, so aiohttp reports
    it as the connection's error)."""


@dataclass(frozen=True)
class EgressPolicy:
    """``allow_private``: loopback and private ranges may be called."""

    allow_private: bool = True

    def address_refusal(self, address: str) -> str | None:
        """Why this IP address may not be called, or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"'{address}' is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip
        if any(ip in net for net in _ALWAYS_REFUSED):
            return (
                f"{ip} is a link-local, metadata or reserved address, which providers may "
                "never be on"
            )
        if not self.allow_private and any(ip in net for net in _PRIVATE):
            return (
                f"{ip} is a loopback or private address; the operator allows only public "
                "provider addresses (PANOPTICON_ALLOW_PRIVATE_URLS=false)"
            )
        return None

    def url_refusal(self, url: str) -> str | None:
        """What is wrong with this base URL before any DNS lookup, or None. Host names are
        checked again, by their addresses, when called (:func:`guarded_resolver`)."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            return f"not a valid URL: {exc}"
        if parts.scheme not in ("http", "https"):
            return f"the scheme must be http or https, not '{parts.scheme or '(none)'}'"
        if not host:
            return "the URL has no host"
        host = host.rstrip(".").lower()
        if host in METADATA_HOSTS:
            return f"{host} is a cloud metadata endpoint, which providers may never be on"
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            try:  # an address written as one number, in octal or hex, or with parts left out
                return self.address_refusal(socket.inet_ntoa(socket.inet_aton(host)))
            except OSError:
                pass
            if not self.allow_private and (host == "localhost" or host.endswith(".localhost")):
                return self.address_refusal("127.0.0.1")
            return None
        return self.address_refusal(host)


@cache
def _resolver_class() -> type[Any]:
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import DefaultResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self, policy: EgressPolicy) -> None:
            self._policy = policy
            self._inner = DefaultResolver()

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[Any]:
            if host.rstrip(".").lower() in METADATA_HOSTS:
                raise EgressRefused(f"{host} is a cloud metadata endpoint")
            results: list[Any] = await self._inner.resolve(host, port, family)
            for result in results:
                reason = self._policy.address_refusal(result["host"])
                if reason is not None:
                    raise EgressRefused(f"{host} resolves to {reason}")
            return results

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver


def guarded_resolver(policy: EgressPolicy) -> Any:
    """An aiohttp resolver that refuses the addresses ``policy`` refuses."""
    return _resolver_class()(policy)


async def _checked_address(host: str, port: int, policy: EgressPolicy) -> str:
    """The address to connect to for ``host``: the first it resolves to, when the policy
    refuses none of them. Raises EgressRefused."""
    if host.rstrip(".").lower() in METADATA_HOSTS:
        raise EgressRefused(f"{host} is a cloud metadata endpoint")
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        reason = policy.address_refusal(address)
        if reason is not None:
            raise EgressRefused(f"{host} resolves to {reason}")
    if not addresses:
        raise EgressRefused(f"{host} resolves to no address")
    return addresses[0]


@cache
def _transport_class() -> type[Any]:
    import httpx

    class GuardedTransport(httpx.AsyncBaseTransport):
        """httpx's transport, connecting only to addresses the policy allows."""

        def __init__(self, policy: EgressPolicy) -> None:
            self._policy = policy
            self._inner = httpx.AsyncHTTPTransport(trust_env=False)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            host = request.url.host
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            address = await _checked_address(host, port, self._policy)
            if address != host:
                # the Host header keeps the name; TLS verifies the certificate against it
                request.url = request.url.copy_with(host=address)
                request.extensions = {**request.extensions, "sni_hostname": host}
            response: httpx.Response = await self._inner.handle_async_request(request)
            return response

        async def aclose(self) -> None:
            await self._inner.aclose()

    return GuardedTransport


def guarded_httpx_client(policy: EgressPolicy) -> Any:
    """An ``httpx.AsyncClient`` that connects only to addresses ``policy`` allows, follows
    no redirect and reads no proxy from the environment."""
    import httpx

    return httpx.AsyncClient(
        transport=_transport_class()(policy), follow_redirects=False, trust_env=False
    )
