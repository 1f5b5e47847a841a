"""SSRF guard: refuse requests to loopback, private, link-local and cloud-metadata addresses.

On by default inside Kubernetes (``ssrf_guard=auto``), where a crawled page could otherwise make a
worker reach the cluster's internal services or the node's metadata endpoint. The check runs on the
addresses a host name *resolves to*, at connect time, in the lookup whose answer the transport then
connects to (aiohttp's resolver; for httpx's own transport, its network backend), so DNS rebinding and
redirects to internal names are caught. Hosts or networks in ``ssrf_allow`` are exempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# besides is_private/is_loopback/...: shared address space and well-known metadata endpoints
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "fd00:ec2::254/128", "192.0.0.0/24")]


class SSRFRefused(OSError):
    """The request's address is internal and not allow-listed."""


def guard_enabled(mode: str, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return mode == "on" or (mode == "auto" and "KUBERNETES_SERVICE_HOST" in env)


def is_internal(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in net for net in _EXTRA_BLOCKED)
    )


class SSRFGuard:
    def __init__(self, allow: list[str]) -> None:
        self.allow_hosts: set[str] = set()
        self.allow_nets: list[IPNetwork] = []
        for entry in allow:
            try:
                self.allow_nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allow_hosts.add(entry.lower().rstrip("."))
        self.refused = 0

    def _ip_allowed(self, ip: IPAddress) -> bool:
        return not is_internal(ip) or any(ip in net for net in self.allow_nets)

    def check_ip(self, host: str, ip_text: str) -> None:
        ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
        if not self._ip_allowed(ip):
            self.refused += 1
            raise SSRFRefused(f"refused {host} ({ip}): internal address (allow it with ssrf_allow)")

    async def check_url(self, url: str) -> None:
        """Check a URL before connecting. IP literals are checked here; names also in the resolver.

        The host is checked in every form a layer below may give it: as written, as httpx sends it
        (IDNA: ``127。0。0。1`` is the literal ``127.0.0.1``, which aiohttp connects to without
        resolving) and as the URL Standard normalises it (IPv4 number forms such as ``0x7f.1`` or
        ``2130706433``, full-width digits)."""
        forms = host_forms(url)
        if forms and forms[0] in self.allow_hosts:
            return
        for host in forms:
            try:
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                if host == "localhost" or host.endswith(".localhost"):
                    self.refused += 1
                    raise SSRFRefused(f"refused {host}: loopback name (allow it with ssrf_allow)") from None
                continue
            self.check_ip(host, host.strip("[]"))

    def aiohttp_resolver(self) -> Any:
        """An aiohttp resolver that drops internal addresses after resolution."""
        from aiohttp.resolver import DefaultResolver

        guard = self

        class GuardedResolver(DefaultResolver):  # type: ignore[misc, valid-type]
            async def resolve(
                self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
            ) -> list[dict[str, Any]]:
                infos = await super().resolve(host, port, family)
                if host.lower().rstrip(".") in guard.allow_hosts:
                    return list(infos)
                ok = []
                last: SSRFRefused | None = None
                for info in infos:
                    try:
                        guard.check_ip(host, info["host"])
                        ok.append(info)
                    except SSRFRefused as exc:
                        last = exc
                if not ok:
                    raise last or SSRFRefused(f"refused {host}: no address")
                return ok

        return GuardedResolver()

    def httpcore_backend(self, inner: Any, trusted: set[str]) -> Any:
        """A network backend for httpx's own transport (httpcore) that resolves a name itself, drops
        internal addresses and connects to a checked address: one lookup, the one connected to, so a
        name that answers differently the next time (DNS rebinding) gains nothing. The peer address is
        checked again once connected. ``trusted``: hosts connected to as given (the configured proxy)."""
        import httpcore

        guard = self

        class GuardedBackend(httpcore.AsyncNetworkBackend):  # type: ignore[misc]
            async def connect_tcp(
                self,
                host: str,
                port: int,
                timeout: float | None = None,
                local_address: str | None = None,
                socket_options: Any = None,
            ) -> Any:
                name = host.lower().rstrip(".")
                kwargs = {"timeout": timeout, "local_address": local_address, "socket_options": socket_options}
                if name in trusted or name in guard.allow_hosts:
                    return await inner.connect_tcp(host, port, **kwargs)
                try:
                    ipaddress.ip_address(host.strip("[]"))
                    addresses = [host.strip("[]")]
                except ValueError:
                    loop = asyncio.get_running_loop()
                    try:
                        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                    except OSError as exc:
                        raise httpcore.ConnectError(f"{host}: {exc}") from exc
                    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
                allowed: list[str] = []
                refusal: SSRFRefused | None = None
                for ip in addresses:
                    try:
                        guard.check_ip(host, ip)
                        allowed.append(ip)
                    except SSRFRefused as exc:
                        refusal = exc
                if not allowed:
                    raise refusal or SSRFRefused(f"refused {host}: no address")
                failure: BaseException | None = None
                for ip in allowed:
                    try:
                        stream = await inner.connect_tcp(ip, port, **kwargs)
                    except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                        failure = exc
                        continue
                    peer = stream.get_extra_info("server_addr")
                    if peer:
                        try:
                            guard.check_ip(host, str(peer[0]))
                        except SSRFRefused:
                            await stream.aclose()
                            raise
                    return stream
                assert failure is not None
                raise failure

            async def connect_unix_socket(
                self, path: str, timeout: float | None = None, socket_options: Any = None
            ) -> Any:
                raise SSRFRefused(f"refused unix socket {path}")

            async def sleep(self, seconds: float) -> None:
                await inner.sleep(seconds)

        return GuardedBackend()

    async def resolve_and_check(self, url: str) -> None:
        """For transports without a resolver hook, and for targets behind a proxy (the proxy resolves
        them): resolve now and check every address."""
        await self.check_url(url)
        forms = host_forms(url)
        host = forms[-1] if forms else ""
        if not forms or forms[0] in self.allow_hosts:
            return
        try:
            ipaddress.ip_address(host.strip("[]"))
            return  # a literal: checked above
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None)
        for info in infos:
            self.check_ip(host, str(info[4][0]))


def host_forms(url: str) -> list[str]:
    """The URL's host as written, as httpx will send it, and as the URL Standard normalises it
    (lower case, no trailing dot; duplicates removed, the written form first)."""
    import httpx

    from .urls import normalize

    forms: list[str] = []

    def add(host: str | None) -> None:
        if host:
            h = host.lower().rstrip(".")
            if h and h not in forms:
                forms.append(h)

    try:
        add(urlsplit(url).hostname)
    except ValueError:
        pass
    try:
        add(httpx.URL(url).host)
    except Exception:  # httpx refuses it: the transport will not connect anywhere
        pass
    normal = normalize(url)
    if normal is not None:
        try:
            add(urlsplit(normal).hostname)
        except ValueError:
            pass
    return forms


def is_ssrf_error(exc: BaseException | None) -> bool:
    """True if ``exc`` (an httpx/aiohttp error) was caused by the guard."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, SSRFRefused):
            return True
        nxt = getattr(exc, "os_error", None)
        exc = nxt if isinstance(nxt, BaseException) else (exc.__cause__ or exc.__context__)
        seen += 1
    return False
