"""Load management's rules: members, how an allocation document looks to the planner, retry
pacing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from commands.load_management import allocation as lm
from commands.load_management import rules as member_rules
from commands.load_management.rules import Pacer, controlled, retry_after

T0 = datetime(2026, 1, 1, tzinfo=UTC)






def test_controlled_reads_an_allocation_document() -> None:
    now = T0 + timedelta(hours=1)
    alloc = {"_id": 5, "started_at": T0, "accepted": 16.0, "unsure": None,
             "in_flight": {"command_id": "lm-5-2", "limit": 10.5},
             "failed": {"limit": 8.0, "at": now - timedelta(seconds=5), "count": 1}}
    assert controlled(alloc, 320, now) == lm.Controlled(5, T0, 320, 160, 105, None, 80)
    old = {**alloc, "failed": {"limit": 8.0, "at": now - timedelta(minutes=5), "count": 1}}
    assert controlled(old, 320, now).held is None


def test_retry_after_doubles_up_to_a_ceiling() -> None:
    assert [retry_after(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_after(50) == 900


async def test_pacer_spaces_sends() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(5.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await pacer.wait()
    assert slept == [0.2, 0.2, 0.2]
    now[0] += 10  # idle for a while: the next goes at once
    await pacer.wait()
    assert slept == [0.2, 0.2, 0.2]
    unlimited = Pacer(0)
    await asyncio.wait_for(unlimited.wait(), 1)


@pytest.mark.parametrize(("text", "member"), [
    ("CP001", ("CP001", None)), ("CP001:2", ("CP001", 2)), ("site:a:3", ("site:a", 3)),
    ("urn:x", ("urn:x", None)),
])
def test_parse_member(text: str, member: tuple[str, int | None]) -> None:
    assert member_rules.parse_member(text) == member


@pytest.mark.parametrize("text", ["", ":3", "CP1:0"])
def test_parse_member_refuses(text: str) -> None:
    from services.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        member_rules.parse_member(text)


def test_member_for_prefers_the_connector_entry() -> None:
    group = {"members": [{"station": "A", "connector": None, "max_current": 16},
                         {"station": "A", "connector": 2, "max_current": 32},
                         {"station": "B", "connector": 1}]}
    assert member_rules.member_for(group, "A", 2)["max_current"] == 32
    assert member_rules.member_for(group, "A", 1)["max_current"] == 16
    assert member_rules.member_for(group, "B", 2) is None
