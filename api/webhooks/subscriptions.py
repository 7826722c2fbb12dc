"""What the webhook routes do, without HTTP: subscriptions created, changed, listed and
deleted, the delivery log, replays and pings — and how each is shown (never the secret,
except once in the answer to its creation).

A URL is checked when it is set (http/https only, no credentials; every address its host
resolves to public, unless GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS) and again before every
attempt (:mod:`api.webhooks.sender`): DNS can change.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.webhooks import rules
from api.webhooks.repository import WebhookRepository, new_delivery, new_id
from api.webhooks.secret_box import SecretBox
from api.webhooks.sender import Refused, checked_address
from services.clock import iso, utcnow
from services.events import PUBLIC_EVENTS
from services.webhook_settings import WebhookSettings

log = logging.getLogger("gridlink.api.webhooks")

MAX_DESCRIPTION = 500


class SubscriptionCreate(BaseModel):
    """A new subscription: where to, which events (catalogue names, ``family.*``, ``*``)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=rules.MAX_URL_LENGTH,
                     examples=["https://billing.example.com/gridlink"])
    events: list[str] = Field(min_length=1, max_length=len(PUBLIC_EVENTS) + 8,
                              examples=[["transaction.*", "station.connected"]])
    active: bool = True
    description: str = Field("", max_length=MAX_DESCRIPTION)


class SubscriptionUpdate(BaseModel):
    """Fields to change (the others stay); ``rotateSecret``: a new signing secret, shown
    once in the answer."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=rules.MAX_URL_LENGTH)
    events: list[str] | None = Field(None, min_length=1, max_length=len(PUBLIC_EVENTS) + 8)
    active: bool | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    rotateSecret: bool = False


class NotFound(LookupError):
    """No such subscription (or delivery of it)."""


class Conflict(Exception):
    """The subscription changed since the version the request was based on (ETag)."""


def subscription_view(document: dict[str, Any]) -> dict[str, Any]:
    """A subscription as the API shows it (never its secret)."""
    return {"id": document["_id"], "url": document["url"], "events": document["events"],
            "active": document["active"], "description": document.get("description", ""),
            "createdAt": iso(document["created_at"]), "updatedAt": iso(document["updated_at"])}


def delivery_view(document: dict[str, Any]) -> dict[str, Any]:
    """A delivery and its attempts, as the delivery log shows it."""
    def when(value: datetime | None) -> str | None:
        return iso(value) if value else None

    pending = document["state"] == "pending"
    return {"id": document["_id"], "subscription": document["subscription"],
            "event": document["event"], "eventId": document["event_id"],
            "state": document["state"], "attemptCount": document.get("attempt_count", 0),
            "createdAt": iso(document["created_at"]),
            "nextAttemptAt": when(document.get("next_attempt_at")) if pending else None,
            "deliveredAt": when(document.get("delivered_at")),
            "failure": document.get("failure"), "replayOf": document.get("replay_of"),
            "attempts": [{"at": iso(a["at"]), "durationMs": a["duration_ms"],
                          "status": a["status"], "error": a["error"],
                          "response": a.get("response", "")}
                         for a in document.get("attempts", [])]}


class Subscriptions:
    """The operations behind ``/api/v1/webhooks``."""

    def __init__(self, repo: WebhookRepository, box: SecretBox, settings: WebhookSettings,
                 *, wake: Callable[[], None] = lambda: None,
                 bind: Callable[[list[str]], Awaitable[None]] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repo = repo
        self.box = box
        self.allow_private = settings.webhook_allow_private_urls
        self.wake = wake  # tells this process's delivery worker that something is due
        self.bind = bind  # binds {ns}.webhooks to events (api.webhooks.bindings); None: not
        self.clock = clock

    async def _stored(self, events: list[str], active: bool,
                      write: Callable[[], Awaitable[Any]]) -> Any:
        """``write()``'s result; for an active subscription its events are bound to
        ``{ns}.webhooks`` before the write and again after (api/webhooks/bindings.py)."""
        if active and self.bind is not None:
            await self.bind(events)
        result = await write()
        if active and self.bind is not None:
            await self.bind(events)
        return result

    async def check_url(self, url: str) -> str:
        """``url`` if it may be called now; InvalidSubscription (field ``url``) if not."""
        rules.check_url(url)
        try:
            await checked_address(url, allow_private=self.allow_private)
        except Refused as exc:
            log.warning("webhook URL refused", extra={"url_host": rules.check_url(url)[1],
                                                      "error": str(exc)})
            raise rules.InvalidSubscription(
                "url", f"{exc}: webhooks reach public addresses only "
                "(GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS allows others, for development)"
            ) from None
        except OSError as exc:
            raise rules.InvalidSubscription(
                "url", f"the host does not resolve: {exc.strerror or exc}") from None
        return url

    async def create(self, request: SubscriptionCreate) -> tuple[dict[str, Any], str]:
        """The new subscription's view and its signing secret (the only time it is shown)."""
        events = rules.check_patterns(request.events)
        url = await self.check_url(request.url)
        secret = rules.new_secret()
        now = self.clock()
        document = {"_id": new_id("wh"), "url": url, "events": events,
                    "active": request.active, "description": request.description,
                    "secret": self.box.seal(secret), "created_at": now, "updated_at": now,
                    "version": 1}
        await self._stored(events, request.active,
                           lambda: self.repo.create_subscription(document))
        log.info("webhook subscription created", extra={"subscription": document["_id"],
                                                        "events": events})
        return subscription_view(document), secret

    async def get(self, subscription_id: str) -> dict[str, Any]:
        document = await self.repo.subscription(subscription_id)
        if document is None:
            raise NotFound(subscription_id)
        return document

    async def update(self, subscription_id: str, request: SubscriptionUpdate, *,
                     version: int | None = None) -> tuple[dict[str, Any], str | None]:
        """The changed subscription's view, and its new secret if it was rotated."""
        current = await self.get(subscription_id)
        changes: dict[str, Any] = {}
        if request.events is not None:
            changes["events"] = rules.check_patterns(request.events)
        if request.url is not None:
            changes["url"] = await self.check_url(request.url)
        if request.active is not None:
            changes["active"] = request.active
        if request.description is not None:
            changes["description"] = request.description
        secret = rules.new_secret() if request.rotateSecret else None
        if secret is not None:
            changes["secret"] = self.box.seal(secret)
        document = await self._stored(
            changes.get("events", current["events"]), changes.get("active", current["active"]),
            lambda: self.repo.update_subscription(
                subscription_id, changes, self.clock(),
                version=current["version"] if version is None else version))
        if document is None:
            raise Conflict(subscription_id)
        return subscription_view(document), secret

    async def delete(self, subscription_id: str) -> None:
        if not await self.repo.delete_subscription(subscription_id):
            raise NotFound(subscription_id)

    async def delivery(self, subscription_id: str, delivery_id: str) -> dict[str, Any]:
        document = await self.repo.delivery(subscription_id, delivery_id)
        if document is None:
            raise NotFound(delivery_id)
        return document

    async def replay(self, subscription_id: str, delivery_id: str) -> dict[str, Any]:
        """A new delivery of the same event (the same body, a new delivery id), due now."""
        await self.get(subscription_id)
        original = await self.delivery(subscription_id, delivery_id)
        now = self.clock()
        document = new_delivery(subscription_id, original["event"], original["event_id"],
                                original["body"], now, event_at=now,
                                replay_of=original["_id"])
        await self.repo.add_delivery(document)
        self.wake()
        return delivery_view(document)

    async def ping(self, subscription_id: str) -> dict[str, Any]:
        """A ``webhook.ping`` event for this subscription only, due now."""
        await self.get(subscription_id)
        now = self.clock()
        ping_id = secrets.token_hex(16)
        document = new_delivery(subscription_id, rules.PING, ping_id,
                                rules.ping_body(ping_id, now, subscription_id), now,
                                event_at=now)
        await self.repo.add_delivery(document)
        self.wake()
        return delivery_view(document)
