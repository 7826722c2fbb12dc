"""What load management sends, and in which order: exposures, decreases before increases,
nothing that could exceed the limit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from commands.load_management import allocation as lm

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def state(tx: int, *, ceiling: int = 320, accepted: int | None = None,
          in_flight: int | None = None, unsure: int | None = None,
          held: int | None = None) -> lm.Controlled:
    return lm.Controlled(tx, T0 + timedelta(seconds=tx), ceiling, accepted, in_flight,
                         unsure, held)


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


def test_dataclasses_are_values() -> None:
    s = state(1, accepted=10)
    assert replace(s, accepted=10) == s

