"""What a fleet's chargers sent and what they were answered: the :class:`Ledger`.

A real charger keeps its transaction messages (StartTransaction, MeterValues,
StopTransaction) until the CSMS answers them, resending them after a reconnect or a failed
try (OCPP 1.6 §3.7, ``TransactionMessageAttempts``).  A :class:`Ledger` writes that down for
every charger of a fleet, one :class:`Entry` per message (not per send):

- ``sent``: the charger sent it the first time, with the payload every resend repeats;
- ``resent``: it was sent again (a reconnect, a timeout, a CALLERROR);
- ``answered``: the CALLRESULT it got (the transactionId of a StartTransaction);
- ``gave_up``: the charger discarded it after its last attempt, as the standard has it.

What the CSMS should have stored follows from the answered entries; a test compares that
with its database.  The ledger knows nothing of the CSMS: it is the chargers' side.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Entry:
    """One transaction message of one charger, however often it was sent."""

    number: int
    station: str
    action: str
    payload: dict[str, Any]
    sent_at: float
    sends: int = 1
    errors: list[str] = field(default_factory=list)  # CALLERROR codes, timeouts
    result: dict[str, Any] | None = None  # the CALLRESULT payload, once answered
    answered_at: float | None = None
    gave_up: bool = False

    @property
    def answered(self) -> bool:
        return self.result is not None


@dataclass(eq=False)
class Ledger:
    """Every transaction message of a fleet and its answer (see the module docstring)."""

    entries: list[Entry] = field(default_factory=list)
    clock: Any = time.monotonic

    def sent(self, station: str, action: str, payload: dict[str, Any]) -> Entry:
        """A message's first send; its entry."""
        entry = Entry(len(self.entries), station, action, payload, self.clock())
        self.entries.append(entry)
        return entry

    def resent(self, entry: Entry) -> None:
        """The same message was sent again."""
        entry.sends += 1

    def failed(self, entry: Entry, outcome: str) -> None:
        """A try got a CALLERROR (its code) or no answer (``timeout``)."""
        entry.errors.append(outcome)

    def answered(self, entry: Entry, result: dict[str, Any]) -> None:
        """The CALLRESULT came (a second one for the same message is ignored)."""
        if entry.result is None:
            entry.result = result
            entry.answered_at = self.clock()

    def discarded(self, entry: Entry) -> None:
        """The charger gave the message up after its last attempt."""
        entry.gave_up = True

    # --- views ---------------------------------------------------------------------------

    def of(self, action: str, *, answered: bool | None = None) -> Iterator[Entry]:
        """The entries of ``action`` (only the answered or unanswered ones, if given)."""
        for entry in self.entries:
            if entry.action == action and (answered is None or entry.answered == answered):
                yield entry

    @property
    def answers(self) -> int:
        """Messages answered so far."""
        return sum(1 for entry in self.entries if entry.answered)

    def answered_since(self, moment: float) -> int:
        """Messages answered after ``moment`` (the ledger's clock)."""
        return sum(1 for e in self.entries
                   if e.answered_at is not None and e.answered_at > moment)

    def unanswered(self) -> list[Entry]:
        """Messages never answered (still queued, or given up)."""
        return [entry for entry in self.entries if not entry.answered]

    def counts(self) -> dict[str, int]:
        """Messages, answered, resends, given up, by name."""
        return {
            "messages": len(self.entries),
            "answered": self.answers,
            "resends": sum(entry.sends - 1 for entry in self.entries),
            "gave_up": sum(1 for entry in self.entries if entry.gave_up),
        }

    def by_action(self) -> Counter[str]:
        """How many messages of each action."""
        return Counter(entry.action for entry in self.entries)


__all__ = ["Entry", "Ledger"]
