"""Handshake admission (``rpc.connect``): may this connection speak for this station?

Each station has a security profile (OCPP 1.6 Security Whitepaper ed. 2; stored in
``stations``, see :mod:`services.stations`). A connection *meets* a profile by what it shows:

- 3: TLS and a client certificate (verified against the client CA by the gateway or a
  trusted proxy) whose CN is the station's certificate identity and, when organisations are
  configured, whose O is one of them (A00.FR.403-405);
- 2: TLS and HTTP Basic whose user is the station and whose password is its key;
- 1: the same without TLS;
- 0: nothing (only where ``GRIDLINK_ALLOW_SECURITY_PROFILE_0`` says so).

It is admitted when it meets at least the station's profile. Every refusal of credentials
looks the same to the client (401, also for unknown ids — 404 only where profile 0 is allowed
and ids are no secret anyway); the reason goes to the log (with the peer address) and the
metrics. Failed logins are counted per station and per peer (:mod:`authz.limits`): past the
limits a station or an address is locked out for a while (429 with Retry-After, for known and
unknown ids alike) — a password already seen to be right still passes a station's lockout,
so a flood of guesses does not lock out the real charger. Refusals of known stations are
recorded as security events. A password check costs an Argon2id hash: at most
``password_checks_concurrency`` run at once, and a batch of handshakes is decided
concurrently, so the quick decisions (remembered passwords, certificates, refusals without
hashing) are answered first when the gateway accepts partial answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from authz.limits import FailureLimiter
from authz.repository import AuthzRepository
from services import security_events, stations
from services.bus import decode_json
from services.envelope import (
    ConnectBatch,
    ConnectDecision,
    ConnectDecisions,
    ConnectRequest,
    PeerCertificate,
)
from services.errors import Reject
from services.metrics import LOCKOUTS, LOGINS, PASSWORD_CHECKS
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime
from services.settings import Settings

log = logging.getLogger("gridlink.authz.admission")

UNAUTHORIZED, TOO_MANY, NOT_FOUND = 401, 429, 404
#: Security event types GridLink records for refused connections of known stations.
WRONG_CREDENTIALS = "InvalidChargePointCredentials"
WRONG_CERTIFICATE = "InvalidChargePointCertificate"
PROFILE_TOO_LOW = "SecurityProfileTooLow"
LOCKED_OUT = "ChargePointLockedOut"


@dataclass(frozen=True)
class Policy:
    """What the deployment allows."""

    allow_profile_0: bool = False
    accept_unknown: bool = False
    default_registration: str = "Accepted"
    organizations: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(allow_profile_0=settings.allow_security_profile_0,
                   accept_unknown=settings.accept_unknown_stations,
                   default_registration=settings.default_registration,
                   organizations=frozenset(settings.tls_client_organizations))

    @property
    def floor(self) -> int:
        """The lowest profile any connection may have."""
        return 0 if self.allow_profile_0 else 1


def certificate_problem(certificate: PeerCertificate, expected_cn: str,
                        organizations: frozenset[str]) -> str | None:
    """Why a (chain-verified) client certificate does not identify the station, or None."""
    if certificate.common_name != expected_cn:
        return f"certificate CN {certificate.common_name!r} is not {expected_cn!r}"
    if organizations and not organizations.intersection(certificate.organizations):
        return (f"certificate O {list(certificate.organizations)!r} is none of the "
                f"configured organisations")
    return None


@dataclass
class _Verdict:
    decision: ConnectDecision
    event: tuple[str, str] | None = None  # a security event to record: (type, tech info)


class Gatekeeper:
    """Decides one handshake at a time (many concurrently) for :class:`Admission`."""

    def __init__(self, repo: AuthzRepository, policy: Policy, *, failures_per_station: int,
                 failures_per_peer: int, window_s: float, lockout_s: float,
                 spawn: Callable[[Any], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.repo = repo
        self.policy = policy
        self.passwords = repo.passwords
        self.stations = FailureLimiter(limit=failures_per_station, window_s=window_s,
                                       lockout_s=lockout_s)
        self.peers = FailureLimiter(limit=failures_per_peer, window_s=window_s,
                                    lockout_s=lockout_s)
        self._spawn = spawn
        self._clock = clock

    @classmethod
    def from_settings(cls, repo: AuthzRepository, settings: Settings,
                      spawn: Callable[[Any], None]) -> Gatekeeper:
        return cls(repo, Policy.from_settings(settings),
                   failures_per_station=settings.auth_failures_per_station,
                   failures_per_peer=settings.auth_failures_per_peer,
                   window_s=settings.auth_failure_window_s, lockout_s=settings.auth_lockout_s,
                   spawn=spawn)

    async def decide(self, request: ConnectRequest, document: dict[str, Any] | None,
                     now: datetime) -> ConnectDecision:
        """The decision for one handshake; its side effects (registration of an unknown
        station, a security event, the end of an old key's grace) are done before it returns.
        """
        if document is None:
            verdict = await self._unknown(request, now)
        else:
            verdict = await self._known(request, document, now)
        decision = verdict.decision
        LOGINS.labels("accepted" if decision.accept else decision.reason,
                      str(decision.profile if decision.profile is not None else "")).inc()
        extra = {"station": request.station, "peer": request.peer or "unknown",
                 "reason": decision.reason, "tls": request.tls}
        if decision.accept:
            log.debug("connection admitted", extra={**extra, "profile": decision.profile})
        else:
            log.warning("connection refused", extra=extra)
        if verdict.event is not None and document is not None:
            kind, info = verdict.event
            await self._record_event(request, kind, info, now)
        return decision

    # --- unknown ids ----------------------------------------------------------------------

    async def _unknown(self, request: ConnectRequest, now: datetime) -> _Verdict:
        if locked := self._locked_peer(request):
            return locked
        policy = self.policy
        certified = (request.tls and request.certificate is not None and certificate_problem(
            request.certificate, request.station, policy.organizations) is None)
        if policy.accept_unknown and (certified or policy.allow_profile_0):
            profile = 3 if certified else 0
            await self.repo.register_unknown(request.station, profile=profile, now=now)
            return _Verdict(ConnectDecision(accept=True, registration=policy.default_registration,
                                            profile=profile))
        if policy.allow_profile_0:  # every id may connect without credentials: no secret
            return _Verdict(_refusal(NOT_FOUND, "unknown_station"))
        if request.password is not None:
            await self.passwords.waste(request.password)  # as slow as a wrong password
            PASSWORD_CHECKS.labels("hashed").inc()
        if request.password is not None or request.certificate is not None:
            self._fail(request)
        return _Verdict(_refusal(UNAUTHORIZED, "unknown_station"))

    # --- known stations -------------------------------------------------------------------

    async def _known(self, request: ConnectRequest, document: dict[str, Any], now: datetime
                     ) -> _Verdict:
        if locked := self._locked_peer(request):
            return locked
        station = request.station
        required = stations.security_profile(document)
        met, wrong = 0, None  # the profile met; what was wrong with the credentials shown
        if request.certificate is not None and request.tls:
            problem = certificate_problem(request.certificate,
                                          stations.certificate_identity(document, station),
                                          self.policy.organizations)
            if problem is None:
                met = 3
            else:
                wrong = ("certificate_rejected", WRONG_CERTIFICATE, problem)
        match = stations.PasswordMatch()
        if met < 3 and request.password is not None and _has_key(document):
            locked_for = self.stations.locked(f"station:{station}", self._clock())
            if locked_for and not self._remembered(request.password, document):
                PASSWORD_CHECKS.labels("skipped_locked_out").inc()
                return _Verdict(_refusal(TOO_MANY, "locked_out", retry_after=locked_for))
            PASSWORD_CHECKS.labels(
                "remembered" if self._remembered(request.password, document) else "hashed"
            ).inc()
            match = await self.passwords.match(request.password, document, now)
            if match:
                met = max(met, 2 if request.tls else 1)
            else:
                wrong = ("unauthorized", WRONG_CREDENTIALS, "wrong password")
        elif request.password is not None and met < 3:
            wrong = ("unauthorized", WRONG_CREDENTIALS, "the station has no password")
        if met >= max(required, self.policy.floor) and (wrong is None or met == 3):
            return _Verdict(await self._admitted(request, document, met, match))
        if wrong is not None:
            reason, kind, info = wrong
            if self._fail(request):
                return _Verdict(_refusal(UNAUTHORIZED, reason),
                                (LOCKED_OUT, f"locked out after repeated failures ({info})"))
            return _Verdict(_refusal(UNAUTHORIZED, reason), (kind, info))
        if met > 0 or required >= 2:  # right credentials (or none) below the station's profile
            info = (f"connection meets security profile {met}, the station requires "
                    f"{required}" + (" (a password was sent without TLS)"
                                     if met == 1 and required == 2 else ""))
            return _Verdict(_refusal(UNAUTHORIZED, "profile_too_low", profile=met),
                            (PROFILE_TOO_LOW, info))
        # No credentials for a password station: the challenge a client may need first.
        return _Verdict(_refusal(UNAUTHORIZED, "no_credentials"))

    async def _admitted(self, request: ConnectRequest, document: dict[str, Any], met: int,
                        match: stations.PasswordMatch) -> ConnectDecision:
        station = request.station
        now_s = self._clock()
        self.stations.succeed(f"station:{station}", now_s)
        if request.peer:
            self.peers.succeed(f"peer:{request.peer}", now_s)
        if match.previous:
            log.info("station connected with its previous AuthorizationKey (grace period)",
                     extra={"station": station, "peer": request.peer})
        if match.current and document.get("previous_password_hash"):
            await self.repo.forget_previous_password(station)  # A01: the new key works
        scheduled = document.get("next_profile")
        if scheduled is not None and met >= int(scheduled):
            await self.repo.apply_scheduled_profile(station, int(scheduled))
            log.info("security profile upgraded", extra={"station": station,
                                                         "profile": scheduled})
        stored = document.get("password_hash")
        if match.current and stored and stations.needs_rehash(stored):
            self._spawn(self.repo.rehash_password(station, stored, str(request.password)))
        return ConnectDecision(accept=True, profile=met, registration=str(
            document.get("registration") or self.policy.default_registration))

    # --- failures and lockouts ------------------------------------------------------------

    def _locked_peer(self, request: ConnectRequest) -> _Verdict | None:
        if not request.peer:
            return None
        locked_for = self.peers.locked(f"peer:{request.peer}", self._clock())
        if not locked_for:
            return None
        return _Verdict(_refusal(TOO_MANY, "locked_out", retry_after=locked_for))

    def _fail(self, request: ConnectRequest) -> bool:
        """Count a failed login; True when it locked the station out."""
        now_s = self._clock()
        locked = self.stations.fail(f"station:{request.station}", now_s)
        if locked:
            LOCKOUTS.labels("station").inc()
            log.warning("station locked out after repeated failed logins",
                        extra={"station": request.station, "peer": request.peer})
        if request.peer and self.peers.fail(f"peer:{request.peer}", now_s):
            LOCKOUTS.labels("peer").inc()
            log.warning("address locked out after repeated failed logins",
                        extra={"peer": request.peer, "station": request.station})
        return locked

    def _remembered(self, password: str, document: dict[str, Any]) -> bool:
        return any(self.passwords.remembered(password, stored) for stored in (
            document.get("password_hash"), document.get("previous_password_hash")) if stored)

    async def _record_event(self, request: ConnectRequest, kind: str, info: str,
                            now: datetime) -> None:
        """One security event per station, type and minute (a flood stays a few rows)."""
        minute = now.replace(second=0, microsecond=0)
        document = security_events.event_document(
            station=request.station, type=kind, at=now, source=security_events.CSMS,
            tech_info=info[:255], peer=request.peer,
            key=f"{request.station}\0{kind}\0{minute.isoformat()}\0csms")
        await self.repo.record_security_event(document)


def _has_key(document: dict[str, Any]) -> bool:
    return bool(document.get("password_hash") or document.get("previous_password_hash"))


def _refusal(status: int, reason: str, *, retry_after: float | None = None,
             profile: int | None = None) -> ConnectDecision:
    return ConnectDecision(accept=False, status=status, reason=reason, profile=profile,
                           retry_after=None if retry_after is None else max(1, round(
                               retry_after)))


class Admission:
    """The handler of the gateways' admission questions (``rpc.connect``, the fast lane)."""

    def __init__(self, runtime: ServiceRuntime, repo: AuthzRepository) -> None:
        self.runtime = runtime
        self.repo = repo
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gatekeeper = Gatekeeper.from_settings(repo, runtime.settings, self._spawn)

    def _spawn(self, work: Any) -> None:
        self._track(asyncio.ensure_future(work))

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Keep a reference until it is done (decisions past the deadline still finish)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Answer a gateway's :class:`ConnectBatch` (a single :class:`ConnectRequest` from a
        gateway of an earlier release is answered alike). With ``partial`` the decisions go
        back as they are made, so a handshake never waits for another one's password hash.
        Past the admission timeout there is no answer: the gateway refused with 503."""
        runtime = self.runtime
        batch = _connect_batch(message)
        deadline = asyncio.get_running_loop().time() + runtime.settings.connect_timeout_s
        now = utcnow()
        documents = await runtime.with_store(
            lambda: self.repo.admission_documents([r.station for r in batch.requests]))
        tasks = [self._track(asyncio.ensure_future(runtime.with_store(
            lambda r=request: self.gatekeeper.decide(r, documents.get(r.station), now))))
            for request in batch.requests]
        try:
            if batch.partial and not batch.single:
                await self._answer_as_decided(message, tasks, deadline)
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                decisions = await asyncio.wait_for(asyncio.gather(*tasks), max(0.0, remaining))
                if batch.single:
                    await self._reply(message, decisions[0].to_bytes())
                else:
                    await self._reply(message, ConnectDecisions(decisions=decisions).to_bytes())
        except TimeoutError:
            return  # the gateway gave up already and refused with 503 (the rest finish)

    async def _answer_as_decided(self, message: AbstractIncomingMessage,
                                 tasks: list[asyncio.Task[ConnectDecision]], deadline: float
                                 ) -> None:
        loop = asyncio.get_running_loop()
        index = {task: n for n, task in enumerate(tasks)}
        pending: set[asyncio.Task[ConnectDecision]] = set(tasks)
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            done, pending = await asyncio.wait(pending, timeout=remaining,
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError
            await asyncio.sleep(0)  # decisions finishing together go in one answer
            more = {task for task in pending if task.done()}
            done, pending = done | more, pending - more
            ordered = sorted(done, key=index.__getitem__)
            answer = ConnectDecisions(decisions=[task.result() for task in ordered],
                                      indices=[index[task] for task in ordered])
            await self._reply(message, answer.to_bytes())

    async def _reply(self, message: AbstractIncomingMessage, body: bytes) -> None:
        """Answer into the asking gateway's queue — and no other queue, whatever
        ``reply_to`` says (decisions are nobody else's business)."""
        reply_to = message.reply_to
        if not reply_to:
            return
        if not reply_to.startswith(self.runtime.topology.gateway_queue("")):
            log.warning("admission question with a reply queue that is no gateway's dropped",
                        extra={"reply_to": reply_to[:200]})
            return
        await self.runtime.bus.publish("", reply_to, body,
                                       correlation_id=message.correlation_id, persistent=False)


class _Admission(ConnectBatch):
    single: bool = False  # the question was a lone ConnectRequest


def _connect_batch(message: AbstractIncomingMessage) -> _Admission:
    try:
        raw = json.loads(message.body)
    except ValueError:
        raise Reject("malformed admission request: not JSON") from None
    if isinstance(raw, dict) and "requests" in raw:
        batch = decode_json(message, ConnectBatch)
        return _Admission(requests=batch.requests, partial=batch.partial)
    return _Admission(requests=[decode_json(message, ConnectRequest)], single=True)
