"""``/api/v1/webhooks``: subscriptions (admin writes, read to look), their delivery log,
replays and pings; and the API part that runs the delivery worker (docs/webhooks.md).

:func:`part` refuses to build without ``GRIDLINK_WEBHOOK_SECRET_KEY`` (or, in development,
``GRIDLINK_WEBHOOK_DEV_KEY``): the API process then does not start (one line, exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import Admin, Reader
from api.context import ApiContext, Context, Pages
from api.pagination import Page, page
from api.parts import ApiPart
from api.problems import Problem, responses
from api.representations import check_if_match, conditional_get, not_modified
from api.webhooks import rules
from api.webhooks.repository import DELIVERIES, INDEXES, WebhookRepository
from api.webhooks.secret_box import SecretBox
from api.webhooks.subscriptions import (
    Conflict,
    NotFound,
    SubscriptionCreate,
    Subscriptions,
    SubscriptionUpdate,
    delivery_view,
    subscription_view,
)
from api.webhooks.worker import WebhookWorker
from services.bus import Bus
from services.errors import GridLinkError
from services.retention import Retention
from services.settings import Settings

log = logging.getLogger("gridlink.api.webhooks")

WORKER_WAIT_S = 10.0  # how long a subscription write waits for a starting worker

SubscriptionId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{24}$")]
DeliveryId = Annotated[str, Path(pattern=r"^dlv_[0-9a-f]{24}$")]


class Subscription(BaseModel):
    id: str
    url: str
    events: list[str]
    active: bool
    description: str
    createdAt: str
    updatedAt: str


class SubscriptionWithSecret(Subscription):
    secret: str | None = None  # only in the answer that made it


class Attempt(BaseModel):
    at: str
    durationMs: int
    status: int | None
    error: str | None
    response: str


class Delivery(BaseModel):
    id: str
    subscription: str
    event: str
    eventId: str
    state: Literal["pending", "delivered", "failed"]
    attemptCount: int
    createdAt: str
    nextAttemptAt: str | None
    deliveredAt: str | None
    failure: str | None
    replayOf: str | None
    attempts: list[Attempt]


@dataclass
class _Running:
    """This process's delivery worker, once the job started it (routes wake it)."""

    worker: WebhookWorker | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake.set()

    async def bind(self, events: list[str]) -> None:
        """The events bound to ``{ns}.webhooks``, or a 503 (nothing stored) while this
        process's worker is not connected to the broker."""
        try:
            with contextlib.suppress(TimeoutError):  # a process that is starting
                await asyncio.wait_for(self.started.wait(), WORKER_WAIT_S)
            if self.worker is None:
                raise GridLinkError("the webhook worker is not running")
            await self.worker.want(events)
        except Exception as exc:
            log.warning("webhook events not bound: subscription not stored",
                        extra={"error": repr(exc)[:200]})
            raise Problem(503, "the broker is unreachable, so the subscription's events "
                          "could not be routed to it; nothing was stored, retry later",
                          headers={"Retry-After": "5"}) from None


def part(settings: Settings) -> ApiPart:
    """Routes, the delivery worker as a background job, indexes and retention."""
    box = SecretBox.from_settings(settings)
    running = _Running()

    def operations(ctx: ApiContext) -> Subscriptions:
        return Subscriptions(WebhookRepository(ctx.db), box, ctx.settings, wake=running.wake,
                             bind=running.bind)

    async def deliver(ctx: ApiContext) -> None:
        bus = Bus(ctx.settings.amqp_url, ctx.topology, component="api",
                  name=f"gridlink-api-webhooks-{ctx.settings.instance}")
        await bus.connect(prefetch=ctx.settings.prefetch)
        worker = WebhookWorker(ctx.settings, ctx.db, bus, box)
        try:
            await worker.start()
            running.worker = worker
            running.started.set()
            await asyncio.Event().wait()  # until the API stops (cancelled)
        finally:
            running.started.clear()
            running.worker = None
            await asyncio.shield(_close(worker, bus))

    return ApiPart(name="webhooks", router=build_router(operations), background=(deliver,),
                   indexes=INDEXES, retention=(Retention(
                       DELIVERIES, "created_at", settings.retention_webhook_deliveries_days),))


async def _close(worker: WebhookWorker, bus: Bus) -> None:
    await worker.stop()
    await bus.close()


def _invalid(exc: rules.InvalidSubscription) -> Problem:
    field = f"body: {exc.field}"
    return Problem(422, f"{field}: {exc}",
                   errors=[{"field": field, "type": "value_error", "message": str(exc)}])


def build_router(operations: Any) -> APIRouter:
    """The routes over ``operations(ctx)`` (a :class:`Subscriptions`)."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])

    async def existing(ctx: ApiContext, subscription: str) -> dict[str, Any]:
        try:
            return await operations(ctx).get(subscription)
        except NotFound:
            raise Problem(404, f"no webhook subscription {subscription!r}") from None

    @router.post("", status_code=201, response_model=SubscriptionWithSecret,
                 responses=responses(401, 403, 422, 503))
    async def create(body: SubscriptionCreate, response: Response, ctx: Context,
                     caller: Admin) -> Any:
        """Subscribe a URL to events; the answer holds the signing ``secret``, the only
        time it is shown."""
        try:
            view, secret = await operations(ctx).create(body)
        except rules.InvalidSubscription as exc:
            raise _invalid(exc) from None
        response.headers["Location"] = f"/api/v1/webhooks/{view['id']}"
        return {**view, "secret": secret}

    @router.get("", response_model=Page[Subscription], responses=responses(400, 401, 403, 422))
    async def list_subscriptions(request: Request, ctx: Context, paging: Pages,
                                 caller: Reader) -> Any:
        """Subscriptions by id."""
        repo = WebhookRepository(ctx.db)
        return await page(request, repo.subscriptions, {}, sort=[("_id", 1)],
                          limit=paging.limit, cursor=paging.cursor, item=subscription_view)

    @router.get("/{subscription}", response_model=Subscription,
                responses={**responses(401, 403, 404, 422), 304: {"description": "Not Modified"}})
    async def get_subscription(subscription: SubscriptionId, request: Request,
                               response: Response, ctx: Context, caller: Reader) -> Any:
        view = subscription_view(await existing(ctx, subscription))
        return conditional_get(request, response, view, view)

    @router.patch("/{subscription}", response_model=SubscriptionWithSecret,
                  responses=responses(401, 403, 404, 412, 422, 503))
    async def update(subscription: SubscriptionId, body: SubscriptionUpdate,
                     request: Request, response: Response, ctx: Context,
                     caller: Admin) -> Any:
        """Change fields; ``rotateSecret``: a new secret, in this answer only. ``If-Match``
        with the ETag of a GET: 412 if it changed meanwhile."""
        current = await existing(ctx, subscription)
        check_if_match(request, subscription_view(current))
        try:
            view, secret = await operations(ctx).update(subscription, body,
                                                        version=current["version"])
        except rules.InvalidSubscription as exc:
            raise _invalid(exc) from None
        except Conflict:
            raise Problem(412, "the subscription changed meanwhile: fetch it again") from None
        not_modified(request, response, view)
        return {**view, "secret": secret}

    @router.delete("/{subscription}", status_code=204,
                   responses=responses(401, 403, 404, 412, 422))
    async def delete(subscription: SubscriptionId, request: Request, ctx: Context,
                     caller: Admin) -> Response:
        """Delete it; its pending deliveries end failed (the log is kept until retention)."""
        check_if_match(request, subscription_view(await existing(ctx, subscription)))
        try:
            await operations(ctx).delete(subscription)
        except NotFound:
            raise Problem(404, f"no webhook subscription {subscription!r}") from None
        return Response(status_code=204)

    @router.get("/{subscription}/deliveries", response_model=Page[Delivery],
                responses=responses(400, 401, 403, 404, 422))
    async def deliveries(subscription: SubscriptionId, request: Request, ctx: Context,
                         paging: Pages, caller: Reader,
                         state: Annotated[Literal["pending", "delivered", "failed"] | None,
                                          Query()] = None) -> Any:
        """The delivery log, newest first, with every attempt."""
        await existing(ctx, subscription)
        repo = WebhookRepository(ctx.db)
        return await page(request, repo.deliveries, repo.log_query(subscription, state),
                          sort=[("_id", -1)], limit=paging.limit, cursor=paging.cursor,
                          item=delivery_view)

    @router.get("/{subscription}/deliveries/{delivery}", response_model=Delivery,
                responses=responses(401, 403, 404, 422))
    async def delivery(subscription: SubscriptionId, delivery: DeliveryId, ctx: Context,
                       caller: Reader) -> Any:
        try:
            return delivery_view(await operations(ctx).delivery(subscription, delivery))
        except NotFound:
            raise Problem(404, f"no delivery {delivery!r} of {subscription!r}") from None

    @router.post("/{subscription}/deliveries/{delivery}/replay", status_code=202,
                 response_model=Delivery, responses=responses(401, 403, 404, 422))
    async def replay(subscription: SubscriptionId, delivery: DeliveryId, ctx: Context,
                     caller: Admin) -> Any:
        """A new delivery of the same event (same body and event id, a new delivery id)."""
        try:
            return await operations(ctx).replay(subscription, delivery)
        except NotFound:
            raise Problem(404, f"no delivery {delivery!r} of {subscription!r}") from None

    @router.post("/{subscription}/ping", status_code=202, response_model=Delivery,
                 responses=responses(401, 403, 404, 422))
    async def ping(subscription: SubscriptionId, ctx: Context, caller: Admin) -> Any:
        """Send a ``webhook.ping`` event to this subscription only."""
        try:
            return await operations(ctx).ping(subscription)
        except NotFound:
            raise Problem(404, f"no webhook subscription {subscription!r}") from None

    return router
