"""Fetching an image by URL without letting the URL reach inside the network (SSRF guard).

For every hop: only http and https; the name is resolved here and every
address it resolves to must be public (or in the allow-list); the connection
goes to the vetted address (a resolver that answers only with it), so a second,
different DNS answer cannot redirect it; redirects are followed by hand, each
hop checked again, at most ``max_redirects``. Bytes and time are capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from services.ingest.domain.addresses import IPNetwork, refusal

CHUNK = 256 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


class FetchFailed(Exception):
    """A URL could not be fetched. ``transient`` failures may succeed on a retry."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Fetched:
    data: bytes
    url: str  # the final URL, after redirects
    content_type: str | None


class _PinnedResolver(AbstractResolver):
    """Answers with the one address that was checked, whatever DNS says now."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        ip = ipaddress.ip_address(self.address)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [{"hostname": host, "host": self.address, "port": port, "family": fam, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


class SafeFetcher:
    def __init__(self, *, max_bytes: int, timeout: float, max_redirects: int, allow: list[IPNetwork]) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.allow = allow

    async def fetch(self, url: str) -> Fetched:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(url)
        except TimeoutError:
            raise FetchFailed("fetch_timeout", f"Fetching {url} took longer than {self.timeout:g} s.", transient=True) from None

    async def _follow(self, url: str) -> Fetched:
        current = url
        for hop in range(self.max_redirects + 1):
            parsed = self._check_url(current)
            address = await self._vetted_address(parsed)
            status, location, body = await self._get(parsed, address)
            if status in REDIRECTS and location:
                current = urljoin(str(parsed), location)
                continue
            return self._result(current, status, body)
        raise FetchFailed("too_many_redirects", f"{url} redirects more than {self.max_redirects} times.")

    def _check_url(self, url: str) -> URL:
        try:
            parsed = URL(url)
            parsed.host  # noqa: B018 - decoded lazily: an IDNA name that does not decode ('xn--') raises here
        except (ValueError, TypeError):  # UnicodeError is a ValueError
            raise FetchFailed("invalid_url", f"{url[:300]!r} is not a URL.") from None
        if parsed.scheme not in ("http", "https"):
            raise FetchFailed("invalid_url", f"Only http and https URLs are fetched, not {parsed.scheme or 'no scheme'!r}.")
        if not parsed.host:
            raise FetchFailed("invalid_url", f"{url!r} has no host.")
        if parsed.user or parsed.password:
            raise FetchFailed("invalid_url", "URLs with credentials are not fetched.")
        return parsed

    async def _vetted_address(self, url: URL) -> str:
        host = url.host or ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host.strip("[]"), url.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise FetchFailed("unresolvable", f"The host {host!r} cannot be resolved ({exc.strerror}).", transient=True) from None
        except UnicodeError:  # the name cannot be encoded for DNS: an empty label ('a..b'), one over 63 characters
            raise FetchFailed("invalid_url", f"The host {host[:300]!r} is not a valid host name.") from None
        addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
        for text in addresses:
            why = refusal(ipaddress.ip_address(text), self.allow)
            if why:
                raise FetchFailed("blocked_address", f"{host} resolves to {text}, {why}: it is not fetched.")
        if not addresses:
            raise FetchFailed("unresolvable", f"The host {host!r} has no address.", transient=True)
        return addresses[0]

    async def _get(self, url: URL, address: str) -> tuple[int, str | None, bytes]:
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(address), use_dns_cache=False, force_close=True)
        headers = {"User-Agent": "image-corpus-ingest/1", "Accept": "image/*"}
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(url, allow_redirects=False, headers=headers) as response:
                    if response.status in REDIRECTS:
                        return response.status, response.headers.get("Location"), b""
                    if response.content_length is not None and response.content_length > self.max_bytes:
                        raise self._too_large(url)
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(CHUNK):
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise self._too_large(url)
                    return response.status, None, bytes(body)
        except aiohttp.ClientError as exc:
            raise FetchFailed("fetch_failed", f"Fetching {url} failed: {exc}.", transient=True) from None

    def _too_large(self, url: Any) -> FetchFailed:
        return FetchFailed("too_large", f"{url} is larger than the limit of {self.max_bytes:,} bytes.")

    def _result(self, url: str, status: int, body: bytes) -> Fetched:
        if status >= 500 or status in (408, 429):
            raise FetchFailed("http_error", f"{url} answered HTTP {status}.", transient=True)
        if status >= 400:
            raise FetchFailed("http_error", f"{url} answered HTTP {status}.")
        if status != 200:
            raise FetchFailed("http_error", f"{url} answered HTTP {status}, not 200.")
        return Fetched(body, url, None)
