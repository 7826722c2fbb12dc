"""One webhook attempt over HTTP: resolve the host, refuse a non-public address (unless
allowed), POST the signed body to the address that was checked, read a bounded answer.

The request goes to the checked address itself (the URL's host is sent in ``Host`` and, for
https, as the TLS server name, which the certificate is verified against), so a name that
resolves to a public address when checked and to a private one when connecting (DNS
rebinding) reaches nothing it should not. Redirects are never followed (a 3xx is a failed
attempt); the whole attempt has one timeout; at most ``max_response_bytes`` of the answer
are read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from api.webhooks import rules

USER_AGENT = "GridLink-Webhooks/1"
KEPT_RESPONSE_CHARS = 256


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status, or an error (no answer)."""

    status: int | None
    error: str | None
    duration_ms: int
    response: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and rules.success(self.status)


class Refused(Exception):
    """The URL may not be called (an address it resolves to is not public)."""


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an address literal: itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_address(url: str, *, allow_private: bool) -> str:
    """The address to call for ``url``: every address the host resolves to must be public
    (unless ``allow_private``); Refused otherwise, OSError if it does not resolve."""
    _, host, port = rules.check_url(url)
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            problem = rules.address_problem(address)
            if problem is not None:
                raise Refused(f"{host} resolves to {problem}")
    return addresses[0]


class Sender:
    """Makes attempts with one shared HTTP client (connection pooling per address)."""

    def __init__(self, *, timeout_s: float, max_response_bytes: int, allow_private: bool,
                 transport: httpx.AsyncBaseTransport | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.allow_private = allow_private
        # No pooled connections: a connection is keyed by address, and one opened (and
        # verified) for one host name must not carry a request for another on that address.
        self.client = httpx.AsyncClient(
            follow_redirects=False, transport=transport, timeout=httpx.Timeout(timeout_s),
            trust_env=False, limits=httpx.Limits(max_keepalive_connections=0), verify=verify)

    async def close(self) -> None:
        await self.client.aclose()

    async def attempt(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        """POST ``body``; never raises for what the receiver (or its DNS) does."""
        started = time.perf_counter()

        def outcome(status: int | None, error: str | None, response: str = "") -> Outcome:
            return Outcome(status, error, round((time.perf_counter() - started) * 1000),
                           response)

        try:
            async with asyncio.timeout(self.timeout_s):
                address = await checked_address(url, allow_private=self.allow_private)
                return outcome(*await self._post(url, address, body, headers))
        except Refused as exc:
            return outcome(None, f"refused: {exc}")
        except TimeoutError:
            return outcome(None, f"timeout after {self.timeout_s:g} s")
        except OSError as exc:
            return outcome(None, f"cannot resolve or connect: {exc.strerror or exc}")
        except httpx.HTTPError as exc:
            return outcome(None, f"{type(exc).__name__}: {exc}"[:200])

    async def _post(self, url: str, address: str, body: str, headers: dict[str, str]
                    ) -> tuple[int, str | None, str]:
        """The status, why it is not a success when it is a redirect, the answer's start."""
        parts = urlsplit(url)
        literal = f"[{address}]" if ":" in address else address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        request = self.client.build_request(
            "POST", pinned, content=body.encode(), extensions=extensions,
            headers={**headers, "Host": host, "Content-Type": "application/json",
                     "User-Agent": USER_AGENT})
        response = await self.client.send(request, stream=True)
        try:
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept += chunk[: self.max_response_bytes - len(kept)]
                if len(kept) >= self.max_response_bytes:
                    break
        finally:
            await response.aclose()
        text = kept.decode("utf-8", "replace")[:KEPT_RESPONSE_CHARS]
        error = "redirect not followed" if response.is_redirect else None
        return response.status_code, error, text
