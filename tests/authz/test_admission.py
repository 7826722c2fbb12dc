"""Handshake admission: security profiles, uniform refusals, lockouts, security events, the
answers to a gateway's batch — over the in-memory store and bus, with a clock of our own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authz.admission import Admission
from authz.gatekeeper import Gatekeeper, Policy, certificate_problem
from authz.repository import AuthzRepository
from authz.service import SPEC
from services import security_events, stations
from services.envelope import (
    ConnectBatch,
    ConnectDecision,
    ConnectDecisions,
    ConnectRequest,
    PeerCertificate,
)
from services.memory import MemoryBus, MemoryMessage
from services.runtime import ServiceRuntime
from tests.helpers import memory_runtime

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
KEY = "0123456789abcdef0123"  # a profile 1/2 station's AuthorizationKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def certificate(cn: str | None, *organizations: str) -> PeerCertificate:
    return PeerCertificate(common_name=cn, organizations=list(organizations), serial="1",
                           fingerprint="f")


async def gatekeeper(policy: Policy | None = None, *, per_station: int = 5, per_peer: int = 20,
                     lockout_s: float = 300) -> tuple[Gatekeeper, Clock, AuthzRepository]:
    runtime = memory_runtime(SPEC)
    repo = AuthzRepository(runtime.store.db, default_registration="Accepted")
    clock = Clock()
    keeper = Gatekeeper(repo, policy or Policy(), failures_per_station=per_station,
                        failures_per_peer=per_peer, window_s=60, lockout_s=lockout_s,
                        spawn=asyncio.ensure_future, clock=clock)
    db = repo.db
    await stations.add_station(db, "P0", registration="Accepted", password=None, now=NOW)
    await stations.add_station(db, "P1", registration="Accepted", password=KEY, now=NOW)
    await stations.add_station(db, "P2", registration="Pending", password=KEY, now=NOW,
                               security_profile=2)
    await stations.add_station(db, "P3", registration="Accepted", password=None, now=NOW,
                               security_profile=3, certificate_cn="cp-3.example")
    return keeper, clock, repo


async def decide(keeper: Gatekeeper, station: str, **offered: Any) -> ConnectDecision:
    offered.setdefault("peer", "192.0.2.1")
    documents = await keeper.repo.admission_documents([station])
    return await keeper.decide(ConnectRequest(station=station, **offered),
                               documents.get(station), NOW)


def said(decision: ConnectDecision) -> tuple[bool, int, int | None]:
    return decision.accept, decision.status, decision.profile


async def test_each_station_connects_with_exactly_its_profile() -> None:
    keeper, _, _ = await gatekeeper()
    p3 = certificate("cp-3.example")
    assert said(await decide(keeper, "P1", password=KEY)) == (True, 200, 1)
    assert said(await decide(keeper, "P2", password=KEY, tls=True)) == (True, 200, 2)
    assert said(await decide(keeper, "P3", tls=True, certificate=p3)) == (True, 200, 3)
    # a profile-2 charger holding a certificate for its upgrade shows it: Basic decides
    assert said(await decide(keeper, "P2", password=KEY, tls=True,
                             certificate=certificate("P2"))) == (True, 200, 2)
    refused = [
        await decide(keeper, "P0"),  # profile 0 is not allowed here
        await decide(keeper, "P1"),  # no credentials
        await decide(keeper, "P1", password="wrong-wrong-wrong-1"),
        await decide(keeper, "P2", password=KEY),  # right password, but no TLS
        await decide(keeper, "P3", password=KEY, tls=True),  # no certificate, no password
        await decide(keeper, "P3", tls=True, certificate=certificate("someone-else")),
        await decide(keeper, "P3", certificate=p3),  # a certificate without TLS: not believed
        # a higher profile than the station's is refused too (A00.FR.001/002)
        await decide(keeper, "P1", password=KEY, tls=True),
        await decide(keeper, "P1", tls=True, certificate=certificate("P1")),
    ]
    assert all(not d.accept and d.status == 401 for d in refused), refused
    assert [d.reason for d in refused] == [
        "profile_too_low", "no_credentials", "unauthorized", "profile_too_low",
        "unauthorized", "certificate_rejected", "profile_too_low", "profile_mismatch",
        "profile_mismatch"]


async def test_the_registration_comes_with_the_admission() -> None:
    keeper, _, _ = await gatekeeper()
    decision = await decide(keeper, "P2", password=KEY, tls=True)
    assert decision.registration == "Pending"


async def test_profile_0_only_where_allowed_and_then_garbage_credentials_still_fail() -> None:
    keeper, _, _ = await gatekeeper(Policy(allow_profile_0=True))
    assert said(await decide(keeper, "P0")) == (True, 200, 0)
    assert not (await decide(keeper, "P0", password="garbage-garbage-1")).accept
    assert not (await decide(keeper, "P1")).accept  # a profile 1 station still needs its key
    unknown = await decide(keeper, "NOBODY")
    assert (unknown.accept, unknown.status) == (False, 404)


async def test_unknown_ids_are_refused_like_wrong_passwords() -> None:
    keeper, _, _ = await gatekeeper()
    unknown = await decide(keeper, "NOBODY", password=KEY)
    wrong = await decide(keeper, "P1", password="not-the-key-at-all")
    assert (unknown.accept, unknown.status) == (wrong.accept, wrong.status) == (False, 401)


async def test_organisations_are_checked_when_configured() -> None:
    assert certificate_problem(certificate("A", "Acme"), "A", frozenset()) is None
    assert certificate_problem(certificate("A", "Acme"), "A", frozenset({"Acme"})) is None
    assert "O" in (certificate_problem(certificate("A", "Evil"), "A", frozenset({"Acme"}))
                   or "")
    assert "CN" in (certificate_problem(certificate("B", "Acme"), "A", frozenset()) or "")


async def test_an_unknown_station_registers_itself_only_with_a_certificate_or_profile_0() -> None:
    keeper, _, repo = await gatekeeper(Policy(accept_unknown=True))
    assert not (await decide(keeper, "NEW-1")).accept
    assert not (await decide(keeper, "NEW-2", password=KEY)).accept
    admitted = await decide(keeper, "NEW-3", tls=True, certificate=certificate("NEW-3"))
    assert said(admitted) == (True, 200, 3)
    assert not (await decide(keeper, "NEW-4", tls=True, certificate=certificate("NEW-3"))).accept
    stored = await repo.admission_documents(["NEW-1", "NEW-2", "NEW-3", "NEW-4"])
    assert list(stored) == ["NEW-3"] and stored["NEW-3"]["security_profile"] == 3


async def test_repeated_failures_lock_the_station_out_but_not_its_known_good_key() -> None:
    keeper, clock, _ = await gatekeeper(per_station=3)
    assert (await decide(keeper, "P1", password=KEY, peer="198.51.100.7")).accept  # remembered
    for n in range(3):
        assert (await decide(keeper, "P1", password=f"guess-{n:014d}")).status == 401
    locked = await decide(keeper, "P1", password="guess-right-length")
    assert (locked.status, locked.reason) == (429, "locked_out") and locked.retry_after
    # the real charger's key was seen to be right: it still connects
    assert (await decide(keeper, "P1", password=KEY, peer="198.51.100.7")).accept
    clock.now += 301
    assert (await decide(keeper, "P1", password="guess-after-lockout")).status == 401


async def test_a_key_never_seen_is_refused_during_the_lockout_without_hashing() -> None:
    keeper, _, repo = await gatekeeper(per_station=2)
    for n in range(2):
        await decide(keeper, "P1", password=f"guess-{n:014d}")
    started = len(repo.passwords)
    assert (await decide(keeper, "P1", password=KEY)).status == 429
    assert len(repo.passwords) == started  # no success remembered: it was never checked


async def test_an_address_that_keeps_failing_is_locked_out_for_every_station() -> None:
    keeper, _, _ = await gatekeeper(per_peer=3, per_station=100)
    for n in range(3):
        await decide(keeper, f"NOBODY-{n}", password=KEY, peer="203.0.113.9")
    assert (await decide(keeper, "P1", password=KEY, peer="203.0.113.9")).status == 429
    assert (await decide(keeper, "P1", password=KEY, peer="203.0.113.10")).accept


async def test_refusals_of_known_stations_are_security_events_once_a_minute() -> None:
    keeper, _, repo = await gatekeeper()
    for _ in range(3):
        await decide(keeper, "P1", password="wrong-wrong-wrong-1", peer="192.0.2.50")
    await decide(keeper, "P2", password=KEY)  # a password without TLS
    await decide(keeper, "NOBODY", password=KEY)
    events = await security_events.list_rows(repo.db, None)
    assert sorted((e["station"], e["type"]) for e in events) == [
        ("P1", "InvalidChargePointCredentials"), ("P2", "SecurityProfileTooLow")]
    [wrong] = [e for e in events if e["station"] == "P1"]
    assert wrong["peer"] == "192.0.2.50" and wrong["source"] == "csms"
    [low] = [e for e in events if e["station"] == "P2"]
    assert "without TLS" in low["techInfo"]


async def test_the_previous_key_works_in_its_grace_until_the_new_one_is_used() -> None:
    keeper, _, repo = await gatekeeper()
    new = "fedcba9876543210fedc"
    await stations.rotate_password(repo.db, "P1", stations.hash_password(new),
                                   grace_until=NOW + timedelta(minutes=5))
    assert (await decide(keeper, "P1", password=KEY)).accept  # old key, in its grace
    assert (await decide(keeper, "P1", password=new)).accept
    assert not (await decide(keeper, "P1", password=KEY)).accept  # the new one was used


async def test_a_scheduled_profile_applies_at_the_first_connection_that_meets_it() -> None:
    keeper, _, repo = await gatekeeper()
    await stations.schedule_profile(repo.db, "P1", 2)
    assert not (await decide(keeper, "P1", tls=True,
                             certificate=certificate("P1"))).accept  # 3: neither 1 nor 2
    assert (await decide(keeper, "P1", password=KEY)).accept  # fallback (A05.FR.08)
    assert (await decide(keeper, "P1", password=KEY, tls=True)).accept
    assert not (await decide(keeper, "P1", password=KEY)).accept  # profile 2 from now on


async def test_hashes_of_an_earlier_release_are_replaced_after_a_good_login() -> None:
    import hashlib
    import os

    keeper, _, repo = await gatekeeper()
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", KEY.encode(), salt, 1000)
    legacy = f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"
    await repo.db.stations.update_one({"_id": "P1"}, {"$set": {"password_hash": legacy}})
    assert (await decide(keeper, "P1", password=KEY)).accept
    for _ in range(100):  # the rehash runs in the background
        stored = (await repo.db.stations.find_one({"_id": "P1"}))["password_hash"]
        if stored != legacy:
            break
        await asyncio.sleep(0.02)
    assert stored.startswith("$argon2id$") and stations.check_password(KEY, stored)


# --- the gateway's question ----------------------------------------------------------------


async def started(**settings: Any) -> tuple[ServiceRuntime, AuthzRepository]:
    runtime = memory_runtime(SPEC, **settings)
    repo = AuthzRepository(runtime.store.db, default_registration="Accepted")
    await stations.add_station(repo.db, "OPEN", registration="Accepted", password=None,
                               now=NOW)
    await stations.add_station(repo.db, "LOCKED", registration="Accepted", password=KEY,
                               now=NOW)
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    await bus.declare_private_queue(runtime.topology.gateway_queue("pod"))
    return runtime, repo


async def ask(runtime: ServiceRuntime, repo: AuthzRepository, batch: ConnectBatch
              ) -> list[ConnectDecisions]:
    pod = runtime.topology.gateway_queue("pod")
    message = MemoryMessage(batch.to_bytes(), "calls", "rpc.connect", reply_to=pod,
                            correlation_id="c1")
    await Admission(runtime, repo).handle(message)  # type: ignore[arg-type]
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    answers = bus.waiting(pod)
    assert all(a.correlation_id == "c1" for a in answers)
    return [ConnectDecisions.model_validate_json(a.body) for a in answers]


async def test_a_batch_is_answered_in_order() -> None:
    runtime, repo = await started(allow_security_profile_0=True)
    [answer] = await ask(runtime, repo, ConnectBatch(requests=[
        ConnectRequest(station="OPEN"), ConnectRequest(station="LOCKED", password=KEY),
        ConnectRequest(station="LOCKED", password="guess-guess-guess"),
        ConnectRequest(station="LOCKED"), ConnectRequest(station="NOBODY")]))
    assert answer.indices is None
    assert [(d.accept, d.status) for d in answer.decisions] == [
        (True, 200), (True, 200), (False, 401), (False, 401), (False, 404)]


async def test_partial_answers_do_not_wait_for_password_hashes() -> None:
    runtime, repo = await started(allow_security_profile_0=True)
    guesses = [ConnectRequest(station="LOCKED", password=f"guess-{n:012d}", peer=f"10.0.0.{n}")
               for n in range(6)]
    answers = await ask(runtime, repo, ConnectBatch(
        requests=[*guesses, ConnectRequest(station="OPEN")], partial=True))
    first = answers[0]
    assert first.indices == [6] and first.decisions[0].accept  # before any hash finished
    answered = sorted(i for a in answers for i in (a.indices or []))
    assert answered == list(range(7))
    assert all(not d.accept for a in answers[1:] for d in a.decisions)


@pytest.mark.parametrize("single", [True, False])
async def test_a_lone_request_of_an_earlier_gateway_is_answered_alone(single: bool) -> None:
    runtime, repo = await started(allow_security_profile_0=True)
    request = ConnectRequest(station="OPEN")
    body = request.to_bytes() if single else ConnectBatch(requests=[request]).to_bytes()
    pod = runtime.topology.gateway_queue("pod")
    message = MemoryMessage(body, "calls", "rpc.connect", reply_to=pod, correlation_id="c")
    await Admission(runtime, repo).handle(message)  # type: ignore[arg-type]
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    [answer] = bus.waiting(pod)
    if single:
        assert ConnectDecision.model_validate_json(answer.body).accept
    else:
        assert ConnectDecisions.model_validate_json(answer.body).decisions[0].accept


async def test_decisions_go_to_a_gateway_queue_only() -> None:
    runtime, repo = await started(allow_security_profile_0=True)
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    await bus.declare_private_queue("someone.elses.queue")
    message = MemoryMessage(ConnectBatch(requests=[ConnectRequest(station="OPEN")]).to_bytes(),
                            "calls", "rpc.connect", reply_to="someone.elses.queue",
                            correlation_id="c")
    await Admission(runtime, repo).handle(message)  # type: ignore[arg-type]
    assert bus.waiting("someone.elses.queue") == []


async def test_with_no_grace_the_old_key_is_refused_at_once() -> None:
    keeper, _, repo = await gatekeeper()
    await stations.rotate_password(repo.db, "P1", stations.hash_password("fedcba9876543210fedc"),
                                   grace_until=NOW)  # GRIDLINK_AUTHORIZATION_KEY_GRACE_S=0
    assert not (await decide(keeper, "P1", password=KEY)).accept  # A01.FR.03
    assert (await decide(keeper, "P1", password="fedcba9876543210fedc")).accept
