"""The live progress line a fleet run writes (to stderr when it is a terminal, or --progress)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from simulator.stats import Stats, percentile


@dataclass
class ProgressLine:
    """One line, rewritten in place: connections, boots, sent/s, outcomes, recent p99."""

    stream: TextIO
    last_at: float = 0.0
    last_sent: int = 0
    marks: dict[str, int] = field(default_factory=dict)

    def print(self, stats: Stats, now: float, final: bool = False) -> None:
        """Write the line for ``now`` (``final``: end it with a newline)."""
        totals = stats.totals()
        interval = max(now - self.last_at, 1e-9) if self.last_at else 1.0
        rate = (totals["sent"] - self.last_sent) / interval
        recent: list[float] = []
        for name, action in stats.actions.items():
            mark = self.marks.get(name, 0)
            recent.extend(action.latencies[mark:])
            self.marks[name] = len(action.latencies)
        recent.sort()
        p99 = f"{percentile(recent, 99) * 1000:.1f} ms" if recent else "-"
        line = (
            f"[{now - stats.started_at:6.1f}s]"
            f" open {stats.open_connections}/{stats.expected_chargers}"
            f" accepted {len(stats.accepted)} | sent {totals['sent']} ({rate:.0f}/s)"
            f" ok {totals['ok']} err {totals['errors']} tmo {totals['timeouts']}"
            f" conn-fail {sum(stats.connect_failures.values())} | p99 {p99}"
        )
        self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        self.stream.flush()
        self.last_at = now
        self.last_sent = totals["sent"]


__all__ = ["ProgressLine"]
