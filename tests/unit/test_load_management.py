"""Site load management without I/O: allocation, send planning, units, pacing.

Examples pin the documented rules; seeded random loops check the properties over many
groups and over long start/stop/answer sequences with a simulated charger population.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from commands.load_management import allocation as lm
from commands.load_management import rules as member_rules
from commands.load_management.rules import Pacer, controlled, retry_after
from commands.smart_charging import rules as charging_rules

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def demand(tx: int, minimum: float = 0, maximum: float = 32, *, at: int | None = None
           ) -> lm.Demand:
    """A demand in amperes (converted to tenths); ``at``: start, seconds after T0."""
    return lm.Demand(tx, T0 + timedelta(seconds=tx if at is None else at),
                     lm.to_tenths(minimum, up=True), lm.to_tenths(maximum))


def shares(limit: float, *demands: lm.Demand) -> dict[int, float]:
    result = lm.allocate(lm.to_tenths(limit), demands)
    return {tx: lm.from_tenths(v) for tx, v in result.items()}


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "up", "tenths"), [
    (16, False, 160), (0.3, False, 3), (0.3, True, 3), (6.05, False, 60), (6.05, True, 61),
    (7.36, False, 73), (0, True, 0), (22_000, False, 220_000),
])
def test_to_tenths_rounds_limits_down_and_minimums_up(value: float, up: bool,
                                                      tenths: int) -> None:
    assert lm.to_tenths(value, up=up) == tenths


def test_from_tenths_has_one_decimal() -> None:
    assert [lm.from_tenths(t) for t in (0, 1, 107, 160, 73_600)] == [0, 0.1, 10.7, 16, 7360]


# --- allocation: the rules by example ------------------------------------------------------


def test_no_transactions_no_shares() -> None:
    assert lm.allocate(320, []) == {}


def test_equal_shares_when_nobody_is_capped() -> None:
    assert shares(48, demand(1), demand(2), demand(3)) == {1: 16, 2: 16, 3: 16}


def test_everyone_at_maximum_when_the_limit_is_generous() -> None:
    assert shares(100, demand(1, maximum=16), demand(2, maximum=32)) == {1: 16, 2: 32}


def test_water_filling_gives_capped_remainder_to_the_others() -> None:
    # 60 A: the 10 A connector is capped, the two others share the remaining 50.
    assert shares(60, demand(1, maximum=10), demand(2), demand(3)) == {1: 10, 2: 25, 3: 25}


def test_leftover_tenths_go_to_the_earliest_starts() -> None:
    assert shares(10, demand(1), demand(2), demand(3)) == {1: 3.4, 2: 3.3, 3: 3.3}
    assert shares(10, demand(3, at=0), demand(1, at=5), demand(2, at=9)) == {
        3: 3.4, 1: 3.3, 2: 3.3}


def test_same_start_time_orders_by_transaction_id() -> None:
    assert shares(0.2, demand(9, at=0), demand(4, at=0), demand(7, at=0)) == {
        4: 0.1, 7: 0.1, 9: 0}


def test_minimums_lift_a_share_above_the_level() -> None:
    # Fair level would be 10 A each; connector 1 needs 14 A, so the others get 8 each.
    assert shares(30, demand(1, minimum=14), demand(2), demand(3)) == {1: 14, 2: 8, 3: 8}


def test_minimums_that_do_not_fit_pause_the_latest() -> None:
    # 6 A minimum each, 16 A: two fit, the third (latest start) is paused.
    assert shares(16, demand(1, 6), demand(2, 6), demand(3, 6)) == {1: 8, 2: 8, 3: 0}


def test_first_fit_admits_a_later_smaller_minimum() -> None:
    # 20 A: #1 takes 10, #2 needs 12 (does not fit), #3 needs 6 (fits).
    assert shares(20, demand(1, 10), demand(2, 12), demand(3, 6)) == {1: 10, 2: 0, 3: 10}


def test_transaction_without_minimum_always_admitted() -> None:
    assert shares(12, demand(1, 6), demand(2, 6), demand(3)) == {1: 6, 2: 6, 3: 0}
    assert shares(13, demand(1, 6), demand(2, 6), demand(3)) == {1: 6, 2: 6, 3: 1}


def test_zero_or_negative_limit_pauses_everyone() -> None:
    assert shares(0, demand(1), demand(2, 6)) == {1: 0, 2: 0}
    assert lm.allocate(-5, [demand(1)]) == {1: 0}


def test_minimum_above_maximum_is_clamped_to_the_maximum() -> None:
    assert shares(50, demand(1, minimum=20, maximum=10), demand(2)) == {1: 10, 2: 32}


def test_a_transaction_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        lm.allocate(100, [demand(1), demand(1, at=3)])


# --- allocation: properties ----------------------------------------------------------------


def random_demands(rng: random.Random, count: int) -> list[lm.Demand]:
    result = []
    for tx in rng.sample(range(1, 10_000), count):
        maximum = rng.choice([0, 6, 10, 16, 16, 32, 32, 63, rng.randint(1, 800) / 10])
        minimum = rng.choice([0, 0, 6, 8, rng.randint(0, 200) / 10])
        result.append(demand(tx, minimum, maximum, at=rng.randint(0, 50)))
    return result


def test_allocation_properties_over_random_groups() -> None:
    rng = random.Random(20_261_123)
    for _ in range(3000):
        demands = random_demands(rng, rng.randint(0, 12))
        limit = rng.randint(0, 2000)
        result = lm.allocate(limit, demands)
        assert set(result) == {d.transaction_id for d in demands}
        assert sum(result.values()) <= limit
        admitted = [d for d in demands if result[d.transaction_id] > 0 or d.low == 0]
        for d in demands:
            share = result[d.transaction_id]
            assert 0 <= share <= d.high
            assert share == 0 or share >= d.low
        # Nobody paused whose minimum would fit beside the admitted minimums.
        reserved = sum(d.low for d in admitted)
        for d in demands:
            if result[d.transaction_id] == 0 and d.low > 0:
                assert reserved + d.low > limit
        # Work-conserving: limit left over only when every admitted share is at its maximum.
        if sum(result.values()) < limit:
            assert all(result[d.transaction_id] == d.high for d in admitted)
        # Max-min fair: a share more than a tenth below another is at its maximum, or the
        # other is at its minimum.
        for a in admitted:
            for b in admitted:
                sa, sb = result[a.transaction_id], result[b.transaction_id]
                if sa < sb - 1:
                    assert sa == a.high or sb == b.low
        # Deterministic whatever the input order.
        shuffled = demands[:]
        rng.shuffle(shuffled)
        assert lm.allocate(limit, shuffled) == result


# --- members and units ---------------------------------------------------------------------


def test_member_bounds_in_amperes() -> None:
    group = lm.GroupLimit(unit="A", value=63)
    assert lm.member_bounds(group, max_current=32, min_current=6, phases=1) == \
        lm.MemberBounds(minimum=60, maximum=320)
    # No own maximum: the whole group; a maximum above the group is the group.
    assert lm.member_bounds(group, max_current=None, min_current=None, phases=None) == \
        lm.MemberBounds(minimum=0, maximum=630)
    assert lm.member_bounds(group, max_current=80, min_current=None, phases=3).maximum == 630


def test_member_bounds_in_watts_count_voltage_and_phases() -> None:
    group = lm.GroupLimit(unit="W", value=50_000, voltage=230, phases=3)
    three = lm.member_bounds(group, max_current=16, min_current=6, phases=None)
    assert (three.minimum, three.maximum) == (6 * 230 * 3 * 10, 16 * 230 * 3 * 10)
    one = lm.member_bounds(group, max_current=32, min_current=None, phases=1)
    assert one.maximum == 32 * 230 * 10


@pytest.mark.parametrize(("tenths", "group_unit", "charger_unit", "per_ampere", "expected"), [
    (160, "A", "A", 1.0, 16.0),
    (110_400, "W", "W", 690.0, 11_040.0),
    (110_400, "W", "A", 690.0, 16.0),     # 11040 W over 3 x 230 V = 16 A per phase
    (110_000, "W", "A", 690.0, 15.9),     # rounded down, never up
    (160, "A", "W", 690.0, 11_040.0),
])
def test_charger_limit_converts_down(tenths: int, group_unit: str, charger_unit: str,
                                     per_ampere: float, expected: float) -> None:
    assert lm.charger_limit(tenths, group_unit=group_unit, charger_unit=charger_unit,
                            per_ampere=per_ampere) == expected


def test_profile_ids_are_deterministic_and_in_the_reserved_range() -> None:
    assert lm.profile_id(42) == lm.profile_id(42) == lm.PROFILE_ID_BASE + 42
    for tx in (0, 1, 2**31 - 1, 10**12):
        assert lm.is_reserved_profile_id(lm.profile_id(tx))
        assert lm.profile_id(tx) < 2**31
    assert not lm.is_reserved_profile_id(1) and not lm.is_reserved_profile_id(2**31)


def test_stack_level_follows_the_charger() -> None:
    assert lm.stack_level(None) == lm.DEFAULT_STACK_LEVEL
    assert lm.stack_level(8) == 8


def test_tx_profile_payload_is_valid_ocpp() -> None:
    from services import ocpp16

    payload = lm.tx_profile_payload(transaction_id=7, connector=2, limit=10.7, unit="A",
                                    phases=3, stack=4)
    ocpp16.check_csms_call("SetChargingProfile", payload)
    profile = payload["csChargingProfiles"]
    assert (profile["transactionId"], profile["stackLevel"], profile["chargingProfileId"]) == (
        7, 4, lm.profile_id(7))
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10.7, "numberPhases": 3}]


# --- planning by example --------------------------------------------------------------------


def state(tx: int, *, ceiling: int = 320, accepted: int | None = None,
          in_flight: int | None = None, unsure: int | None = None,
          held: int | None = None) -> lm.Controlled:
    return lm.Controlled(tx, T0 + timedelta(seconds=tx), ceiling, accepted, in_flight,
                         unsure, held)


def test_exposure() -> None:
    assert state(1).exposure == 320  # no profile yet: its ceiling
    assert state(1, accepted=100).exposure == 100
    assert state(1, accepted=100, in_flight=50).exposure == 100  # not applied yet
    assert state(1, accepted=100, in_flight=150).exposure == 150  # may be applied already
    assert state(1, accepted=100, unsure=200).exposure == 200
    assert state(1, ceiling=160, accepted=200).exposure == 160


def test_new_transaction_decreases_go_before_increases() -> None:
    # Limit 32 A: #1 had it all, #2 just started (no profile, ceiling 32 A).
    states = [state(1, accepted=320), state(2)]
    sends = lm.plan(320, states, {1: 160, 2: 160})
    assert sends == [lm.Send(1, 160, raises=False), lm.Send(2, 160, raises=False)]


def test_increase_waits_until_the_decrease_is_accepted() -> None:
    # #3 stopped; #1 drops from 16 to 10 (a minimum elsewhere), #2 may rise from 16 to 22.
    states = [state(1, accepted=160), state(2, accepted=160)]
    assert lm.plan(320, states, {1: 100, 2: 220}) == [lm.Send(1, 100, raises=False)]
    in_flight = [state(1, accepted=160, in_flight=100), state(2, accepted=160)]
    assert lm.plan(320, in_flight, {1: 100, 2: 220}) == []
    done = [state(1, accepted=100), state(2, accepted=160)]
    assert lm.plan(320, done, {1: 100, 2: 220}) == [lm.Send(2, 220, raises=True)]


def test_increase_goes_at_once_when_there_is_room() -> None:
    states = [state(1, accepted=100), state(2, accepted=100)]
    assert lm.plan(320, states, {1: 160, 2: 160}) == [
        lm.Send(1, 160, raises=True), lm.Send(2, 160, raises=True)]


def test_only_the_increases_that_fit_go() -> None:
    states = [state(1, accepted=100), state(2, accepted=100), state(3, accepted=150)]
    # 350 exposure under a 400 limit: +50 for #1 fits, then +50 for #2 does not.
    sends = lm.plan(400, states, {1: 150, 2: 150, 3: 100})
    assert sends == [lm.Send(3, 100, raises=False), lm.Send(1, 150, raises=True)]


def test_nothing_sent_for_unchanged_held_or_in_flight() -> None:
    states = [state(1, accepted=160), state(2, accepted=100, held=90),
              state(3, accepted=50, in_flight=60)]
    assert lm.plan(1000, states, {1: 160, 2: 90, 3: 80}) == []


def test_unsure_outcome_is_resent_even_at_the_same_limit() -> None:
    states = [state(1, accepted=100, unsure=200)]
    assert lm.plan(1000, states, {1: 100}) == [lm.Send(1, 100, raises=False)]


def test_no_raise_while_a_new_transaction_is_uncontrolled() -> None:
    states = [state(1, accepted=100), state(2)]  # #2 may draw its ceiling 320
    assert lm.plan(320, states, {1: 160, 2: 160}) == [lm.Send(2, 160, raises=False)]


# --- planning: a long random simulation ------------------------------------------------------


@dataclass
class SimTx:
    ceiling: int
    minimum: int
    started_at: datetime
    actual: int | None = None  # what the charger applies; None: no profile
    accepted: int | None = None
    unsure: int | None = None
    held: int | None = None
    in_flight: int | None = None

    def draw(self) -> int:
        return self.ceiling if self.actual is None else min(self.actual, self.ceiling)

    def controlled(self, tx: int) -> lm.Controlled:
        return lm.Controlled(tx, self.started_at, self.ceiling, self.accepted,
                             self.in_flight, self.unsure, self.held)


@dataclass
class Site:
    limit: int
    rng: random.Random
    txs: dict[int, SimTx] = field(default_factory=dict)
    wire: list[tuple[int, int]] = field(default_factory=list)  # (tx, limit) not answered

    def exposure(self) -> int:
        return sum(t.controlled(tx).exposure for tx, t in self.txs.items())

    def draw(self) -> int:
        return sum(t.draw() for t in self.txs.values())

    def reconcile(self) -> None:
        demands = [lm.Demand(tx, t.started_at, t.minimum, t.ceiling) for tx, t in self.txs.items()]
        targets = lm.allocate(self.limit, demands)
        before = self.exposure()
        for send in lm.plan(self.limit, [t.controlled(tx) for tx, t in self.txs.items()],
                            targets):
            self.txs[send.transaction_id].in_flight = send.limit
            self.wire.append((send.transaction_id, send.limit))
        # Sending never raises the exposure beyond the limit (or beyond where it was).
        assert self.exposure() <= max(self.limit, before)

    def answer(self, index: int, outcome: str) -> None:
        tx, limit = self.wire.pop(index)
        t = self.txs.get(tx)
        if t is None:
            return  # the transaction stopped meanwhile
        t.in_flight = None
        if outcome == "accept":
            t.actual = t.accepted = limit
            t.unsure = t.held = None
            return
        if outcome == "lost":  # timeout: applied or not, nobody knows
            if self.rng.random() < 0.5:
                t.actual = limit
        t.unsure = max(limit, t.unsure or 0)
        t.held = limit


def test_simulated_site_never_exceeds_its_limit() -> None:
    rng = random.Random(7)
    for _ in range(100):
        site = Site(limit=rng.choice([160, 320, 630, 1000]), rng=rng)
        next_tx, clock = 1, T0
        for _ in range(150):
            clock += timedelta(seconds=1)
            event = rng.random()
            settled_before = site.exposure() <= site.limit
            if event < 0.15 and len(site.txs) < 8:
                site.txs[next_tx] = SimTx(ceiling=rng.choice([100, 160, 320, 630]),
                                          minimum=rng.choice([0, 0, 60]), started_at=clock)
                next_tx += 1
                settled_before = False  # a new charger draws its ceiling until told
            elif event < 0.25 and site.txs:
                site.txs.pop(rng.choice(sorted(site.txs)))
            elif event < 0.28:
                site.limit = rng.choice([160, 320, 630, 1000])
                settled_before = False
            elif event < 0.35:
                for t in site.txs.values():
                    t.held = None  # time passes: failed limits may be retried
            elif site.wire:
                outcome = rng.choices(["accept", "reject", "lost"], [0.85, 0.1, 0.05])[0]
                site.answer(rng.randrange(len(site.wire)), outcome)
            site.reconcile()
            # GridLink's view is sound: chargers never draw more than it accounts for.
            assert site.draw() <= site.exposure()
            if settled_before:
                assert site.exposure() <= site.limit
        # Quiescence: every answer Accepted, retries allowed; the shares are in force.
        for _ in range(50):
            for t in site.txs.values():
                t.held = None
            while site.wire:
                site.answer(0, "accept")
            site.reconcile()
            if not site.wire:
                break
        demands = [lm.Demand(tx, t.started_at, t.minimum, t.ceiling)
                   for tx, t in site.txs.items()]
        targets = lm.allocate(site.limit, demands)
        assert {tx: t.actual for tx, t in site.txs.items()} == targets
        assert site.draw() <= site.limit


# --- the feature's small pieces --------------------------------------------------------------


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


# --- shared group helpers -----------------------------------------------------------------------


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


@pytest.mark.parametrize(("criteria", "matches"), [
    ({}, True),
    ({"id": 7}, True),
    ({"id": 8, "connectorId": 1}, False),  # an id ignores the other fields
    ({"id": 7, "connectorId": 2}, True),
    ({"connectorId": 1, "chargingProfilePurpose": "TxProfile"}, True),
    ({"connectorId": 1, "stackLevel": 2}, False),
    ({"chargingProfilePurpose": "TxDefaultProfile"}, False),
])
def test_clear_matches(criteria: dict, matches: bool) -> None:
    assert charging_rules.clear_matches(criteria, charging_profile_id=7, connector=1,
                                  purpose="TxProfile", stack_level=1) is matches


def test_caps_from_configuration_snapshot() -> None:
    snapshot = {"keys": [
        {"key": "NumberOfConnectors", "value": "2"},
        {"key": "ChargeProfileMaxStackLevel", "value": "8"},
        {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "Current"},
        {"key": "ChargingScheduleMaxPeriods", "value": "24"},
        {"key": "MaxChargingProfilesInstalled", "value": "not a number"}]}
    caps = charging_rules.caps_from(snapshot)
    assert caps == charging_rules.ChargerCaps(connectors=2, max_stack_level=8,
                                        units=frozenset({"A"}), max_periods=24)
    assert caps.unit_for("W") == "A" and caps.unit_for("A") == "A"
    assert charging_rules.caps_from(None) == charging_rules.ChargerCaps()
    assert charging_rules.caps_from(None).unit_for("W") == "W"
    both = charging_rules.caps_from({"keys": [
        {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "Current,Power"}]})
    assert both.units == frozenset({"A", "W"})


def test_dataclasses_are_values() -> None:
    s = state(1, accepted=10)
    assert replace(s, accepted=10) == s
