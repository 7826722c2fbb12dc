"""Failed logins counted per station and per peer address, and the lockouts they cause. No I/O.

A key (``station:<id>`` or ``peer:<address>``) that failed ``limit`` times within ``window_s``
is locked out for ``lockout_s``. The counts live in the authz process: with several authz
replicas each counts the handshakes it decides (the gateways spread them), so the effective
limit is at most the replica count times ``limit`` — still a handful of guesses a minute.
Memory is bounded: beyond ``max_keys`` keys the oldest are dropped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class FailureLimiter:
    def __init__(self, *, limit: int, window_s: float, lockout_s: float,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_keys = max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def locked(self, key: str, now: float) -> float:
        """Seconds ``key`` stays locked out (0: not locked)."""
        record = self._records.get(key)
        if record is None or record.locked_until <= now:
            return 0.0
        return record.locked_until - now

    def fail(self, key: str, now: float) -> bool:
        """Count a failure; True when it locks ``key`` out."""
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
            if len(self._records) > self.max_keys:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(key)
        while record.failures and record.failures[0] <= now - self.window_s:
            record.failures.popleft()
        record.failures.append(now)
        if len(record.failures) >= self.limit and record.locked_until <= now:
            record.locked_until = now + self.lockout_s
            record.failures.clear()
            return True
        return False

    def succeed(self, key: str, now: float) -> None:
        """A login succeeded: earlier failures of ``key`` no longer count (a lockout still
        running stays)."""
        record = self._records.get(key)
        if record is not None and record.locked_until <= now:
            del self._records[key]

    def __len__(self) -> int:
        return len(self._records)
