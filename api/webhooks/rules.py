"""The pure parts of webhooks: which subscription wants an event, the signature, the retry
schedule, which URLs and addresses may be called, the body a receiver gets. No I/O.

Signature (docs/webhooks.md): ``X-GridLink-Signature: t=<unix seconds>,v1=<hex>``, where
``hex`` is HMAC-SHA256 over ``"<t>." + raw body`` with the subscription's secret; a receiver
recomputes it over the bytes it received and refuses a ``t`` outside its replay window.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from services.clock import iso
from services.events import AT_FIELD, ID_FIELD, PUBLIC_EVENTS

SIGNATURE_HEADER = "X-GridLink-Signature"
EVENT_HEADER = "X-GridLink-Event"
DELIVERY_HEADER = "X-GridLink-Delivery"
REPLAY_WINDOW_S = 300  # what docs/webhooks.md tells receivers to accept
SECRET_PREFIX = "whsec_"
PING = "webhook.ping"  # the test event of POST /webhooks/{id}/ping, never on the bus
MAX_URL_LENGTH = 2048

_PATTERN = re.compile(r"^(\*|[a-z]+\.(\*|[a-z]+))$")


class InvalidSubscription(ValueError):
    """A subscription field GridLink refuses (the API answers 422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- which events ---------------------------------------------------------------------------


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """The event patterns of a subscription: catalogue names, ``family.*`` or ``*``, each
    matching at least one event; duplicates dropped, order kept."""
    if not patterns:
        raise InvalidSubscription("events", "at least one event (or \"*\") is required")
    for pattern in patterns:
        if not _PATTERN.match(pattern) or not any(matches(pattern, e) for e in PUBLIC_EVENTS):
            raise InvalidSubscription(
                "events", f"{pattern!r} matches no event; events are "
                f"{', '.join(PUBLIC_EVENTS)} (or family.* or *)")
    return list(dict.fromkeys(patterns))


def matches(pattern: str, event: str) -> bool:
    """``transaction.*`` matches ``transaction.started``; ``*`` matches every event."""
    if pattern in ("*", event):
        return True
    family, _, rest = pattern.partition(".")
    return rest == "*" and event.split(".", 1)[0] == family


def wanted(patterns: Iterable[str], event: str) -> bool:
    return any(matches(p, event) for p in patterns)


# --- the body and its signature -------------------------------------------------------------


def camel_keys(value: Any) -> Any:
    """``transaction_id`` → ``transactionId`` in every key, as the API's resources spell
    them (values untouched)."""
    if isinstance(value, dict):
        return {_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def delivery_body(event: str, body: dict[str, Any]) -> str:
    """What a receiver gets: ``{"id", "type", "createdAt", "data"}`` as compact JSON, keys
    in camelCase like the API's (the exact text is stored and signed, so a retry or a
    replay sends the same bytes)."""
    data = {k: v for k, v in body.items() if k not in (ID_FIELD, AT_FIELD)}
    envelope = {"id": body[ID_FIELD], "type": event, "createdAt": body[AT_FIELD],
                "data": camel_keys(data)}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def ping_body(event_id: str, at: datetime, subscription: str) -> str:
    return delivery_body(PING, {ID_FIELD: event_id, AT_FIELD: iso(at),
                                "subscription": subscription})


def new_secret() -> str:
    """A signing secret: 32 random bytes, URL-safe (shown once, at creation)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-GridLink-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float,
           window_s: float = REPLAY_WINDOW_S) -> bool:
    """What a receiver does (and the docs' example): a ``v1`` that matches, a ``t`` within
    ``window_s`` of ``now``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > window_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- when to try again ----------------------------------------------------------------------


def backoff_s(attempts: int, base_s: float, max_s: float,
              rng: random.Random | None = None) -> float:
    """The wait after the ``attempts``-th failed attempt: ``base * 2^(attempts-1)`` capped at
    ``max_s``, with "equal jitter" (between half and all of it), so receivers that failed
    together are not retried in step."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def give_up(attempts: int, age_s: float, *, max_attempts: int, max_age_s: float) -> bool:
    """No further attempt: ``attempts`` made, or the event is too old."""
    return attempts >= max_attempts or age_s >= max_age_s


def success(status: int) -> bool:
    return 200 <= status < 300


# --- where to --------------------------------------------------------------------------------


def check_url(url: str) -> tuple[str, str, int]:
    """An absolute http(s) URL without credentials: its (scheme, host, port)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSubscription("url", f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSubscription("url", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidSubscription("url", "only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise InvalidSubscription("url", "the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscription("url", "credentials in the URL are not allowed (the "
                                  "signature authenticates GridLink)")
    if parts.fragment:
        raise InvalidSubscription("url", "a fragment (#...) is never sent: remove it")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def address_problem(address: str) -> str | None:
    """Why a receiver at ``address`` may not be called (unless private URLs are allowed):
    loopback, private, link-local (cloud metadata), multicast, reserved or unspecified;
    None for a public address. An IPv4-mapped IPv6 address is judged as its IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("multicast", ip.is_multicast),
                       ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved)):
        if flag:
            return f"{address} is a {kind} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None
