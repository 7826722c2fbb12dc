"""Handshake admission (``rpc.connect``): may this connection speak for this station?

Each station has a security profile (OCPP 1.6 Security Whitepaper ed. 2; stored in
``stations``, see :mod:`services.stations`). A connection *uses* a profile by what it shows
(:func:`profile_used`):

- 1: HTTP Basic whose user is the station and whose password is its key, without TLS;
- 2: the same over TLS;
- 3: TLS and a client certificate (verified against the client CA by the gateway or a
  trusted proxy) whose CN is the station's certificate identity and, when organisations are
  configured, whose O is one of them (A00.FR.403-405);
- 0: nothing (only where ``GRIDLINK_ALLOW_SECURITY_PROFILE_0`` says so).

It is admitted with the right credentials for exactly the station's profile — a lower and a
higher one are refused alike (A00.FR.001/002) — or for the profile an accepted
ChangeConfiguration SecurityProfile scheduled (A05; the first such connection makes it the
station's). Every refusal of credentials looks the same to the client (401, also for unknown
ids — 404 only where profile 0 is allowed and ids are no secret anyway); the reason goes to
the log (with the peer address) and the metrics. Failed logins are counted per station and
per peer (:mod:`authz.limits`): past the limits a station or an address is locked out for a
while (429 with Retry-After, for known and unknown ids alike) — a password already seen to
be right still passes a station's lockout, so a flood of guesses does not lock out the real
charger. Refusals of known stations are recorded as security events. A password check costs
an Argon2id hash: at most ``password_checks_concurrency`` run at once, and a batch of
handshakes is decided concurrently, so the quick decisions (remembered passwords,
certificates, refusals without hashing) are answered first when the gateway accepts partial
answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authz.limits import FailureLimiter
from authz.repository import AuthzRepository
from services import security_events, stations
from services.envelope import ConnectDecision, ConnectRequest, PeerCertificate
from services.metrics import LOCKOUTS, LOGINS, PASSWORD_CHECKS
from services.settings import Settings

log = logging.getLogger("gridlink.authz.gatekeeper")

UNAUTHORIZED, TOO_MANY, NOT_FOUND = 401, 429, 404
#: Security event types GridLink records for refused connections of known stations.
WRONG_CREDENTIALS = "InvalidChargePointCredentials"
WRONG_CERTIFICATE = "InvalidChargePointCertificate"
PROFILE_TOO_LOW = "SecurityProfileTooLow"
PROFILE_MISMATCH = "SecurityProfileMismatch"
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
        if not settings.tls_client_organizations:
            log.warning("GRIDLINK_TLS_CLIENT_ORGANIZATIONS is empty: the O of charger "
                        "certificates is not checked (A00.FR.404 wants the CPO's name)")
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
        used = profile_used(request)
        certified = used == 3 and request.certificate is not None and certificate_problem(
            request.certificate, request.station, policy.organizations) is None
        # Registered on its first connection: with a certificate GridLink trusts, or where
        # profile 0 is allowed and it shows nothing (a password nobody set is never right).
        if policy.accept_unknown and (certified or (policy.allow_profile_0 and used == 0)):
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
        used = profile_used(request)
        allowed = allowed_profiles(document)
        match = stations.PasswordMatch()
        wrong = None  # what is wrong with the credentials the connection shows
        if used == 3:
            assert request.certificate is not None
            problem = certificate_problem(request.certificate,
                                          stations.certificate_identity(document, station),
                                          self.policy.organizations)
            if problem is not None:
                wrong = ("certificate_rejected", WRONG_CERTIFICATE, problem)
        elif used in (1, 2):
            assert request.password is not None
            if not _has_key(document):
                wrong = ("unauthorized", WRONG_CREDENTIALS, "the station has no password")
            else:
                locked_for = self.stations.locked(f"station:{station}", self._clock())
                remembered = self._remembered(request.password, document)
                if locked_for and not remembered:
                    PASSWORD_CHECKS.labels("skipped_locked_out").inc()
                    return _Verdict(_refusal(TOO_MANY, "locked_out", retry_after=locked_for))
                PASSWORD_CHECKS.labels("remembered" if remembered else "hashed").inc()
                match = await self.passwords.match(request.password, document, now)
                if not match:
                    wrong = ("unauthorized", WRONG_CREDENTIALS, "wrong password")
        if wrong is not None:
            reason, kind, info = wrong
            if self._fail(request):
                return _Verdict(_refusal(UNAUTHORIZED, reason),
                                (LOCKED_OUT, f"locked out after repeated failures ({info})"))
            return _Verdict(_refusal(UNAUTHORIZED, reason), (kind, info))
        if used in allowed and used >= self.policy.floor:
            return _Verdict(await self._admitted(request, document, used, match))
        required = stations.security_profile(document)
        if used == 0 and required == 1:
            # No credentials for a password station: the challenge a client may need first.
            return _Verdict(_refusal(UNAUTHORIZED, "no_credentials"))
        if used < required or used < self.policy.floor:
            info = (f"connection uses security profile {used}, the station has {required}"
                    + (" (a password was sent without TLS)" if used == 1 else ""))
            return _Verdict(_refusal(UNAUTHORIZED, "profile_too_low", profile=used),
                            (PROFILE_TOO_LOW, info))
        # A00.FR.002: one profile per station, a higher one is refused too.
        info = f"connection uses security profile {used}, the station has {required}"
        return _Verdict(_refusal(UNAUTHORIZED, "profile_mismatch", profile=used),
                        (PROFILE_MISMATCH, info))

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
        if scheduled is not None and met == int(scheduled):
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


def profile_used(request: ConnectRequest) -> int:
    """The security profile a connection uses, by what it shows: HTTP Basic is profile 1, or
    2 over TLS (a client certificate a charger shows besides is ignored: a profile-2 charger
    may hold one for its upgrade); otherwise a client certificate over TLS is 3; nothing is
    0."""
    if request.password is not None:
        return 2 if request.tls else 1
    if request.certificate is not None and request.tls:
        return 3
    return 0


def allowed_profiles(document: dict[str, Any]) -> frozenset[int]:
    """The profiles a station may connect with: its own (A00.FR.001/002) and, while an
    upgrade is scheduled (A05), the new one — the old one still while the charger falls back
    (A05.FR.08)."""
    allowed = {stations.security_profile(document)}
    if document.get("next_profile") is not None:
        allowed.add(int(document["next_profile"]))
    return frozenset(allowed)


def _has_key(document: dict[str, Any]) -> bool:
    return bool(document.get("password_hash") or document.get("previous_password_hash"))


def _refusal(status: int, reason: str, *, retry_after: float | None = None,
             profile: int | None = None) -> ConnectDecision:
    return ConnectDecision(accept=False, status=status, reason=reason, profile=profile,
                           retry_after=None if retry_after is None else max(1, round(
                               retry_after)))
