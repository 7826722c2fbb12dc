"""Site load management without I/O: allocation, send planning, units, pacing.

Examples pin the documented rules; seeded random loops check the properties over many
groups and over long start/stop/answer sequences with a simulated charger population.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from commands.load_management import allocation as lm

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
