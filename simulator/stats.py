"""What a simulator run measured: per-action latencies and outcomes, connections, boots.

:class:`Stats` is the :class:`~simulator.recorder.Recorder` of a whole fleet.  Latencies are
kept exactly (an ``array('d')`` per action, 8 bytes a call) so percentiles are exact;
:func:`percentile` uses the nearest-rank definition.  :meth:`Stats.report` turns the run into
a plain dict (the ``--json`` output) and :func:`render_table` into the text table.
Stats from several processes (they pickle) combine exactly with :meth:`Stats.merge`.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from simulator.recorder import DISCONNECTED, INVALID, OK, TIMEOUT


def percentile(ordered: list[float] | array[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of an ascending sequence; NaN if empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Mark:
    """Counters at one moment of a run (see :meth:`Stats.mark`)."""

    actions: dict[str, tuple[int, int, int, Counter[str], int]]
    pacer_skips: int


@dataclass
class ActionStats:
    """Counts and latencies of one action's CALLs."""

    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    invalid: int = 0
    disconnected: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    @property
    def answered(self) -> int:
        """CALLs answered (CALLRESULT or CALLERROR, valid or not)."""
        return self.ok + sum(self.errors.values()) + self.invalid


@dataclass
class Stats:
    """Everything a fleet run records; implements :class:`~simulator.recorder.Recorder`."""

    actions: dict[str, ActionStats] = field(default_factory=dict)
    boots: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    csms_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    malformed_frames: Counter[str] = field(default_factory=Counter)
    connect_failures: Counter[str] = field(default_factory=Counter)
    transfers: Counter[tuple[str, str]] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    open_connections: int = 0
    peak_connections: int = 0
    pacer_skips: int = 0
    unanswered_at_end: Counter[str] = field(default_factory=Counter)
    internal_errors: Counter[str] = field(default_factory=Counter)
    started_at: float = 0.0
    first_accepted_at: float | None = None
    all_accepted_at: float | None = None
    expected_chargers: int = 0

    def _action(self, action: str) -> ActionStats:
        stats = self.actions.get(action)
        if stats is None:
            stats = self.actions[action] = ActionStats()
        return stats

    # --- Recorder ----------------------------------------------------------------------------

    def call_sent(self, action: str) -> None:
        """Count a CALL sent."""
        self._action(action).sent += 1

    def call_done(self, action: str, latency_s: float, outcome: str) -> None:
        """Record how a CALL ended and, when it was answered, its latency."""
        stats = self._action(action)
        if outcome == OK:
            stats.ok += 1
        elif outcome == TIMEOUT:
            stats.timeouts += 1
            return
        elif outcome == DISCONNECTED:
            stats.disconnected += 1
            return
        elif outcome == INVALID:
            stats.invalid += 1
        else:
            stats.errors[outcome] += 1
        stats.latencies.append(latency_s)

    def boot_status(self, charger_id: str, status: str, now: float) -> None:
        """Count a BootNotification answer; note when the whole fleet is first Accepted."""
        self.boots[status] += 1
        if status != "Accepted" or charger_id in self.accepted:
            return
        self.accepted.add(charger_id)
        if self.first_accepted_at is None:
            self.first_accepted_at = now
        if self.expected_chargers and len(self.accepted) >= self.expected_chargers:
            self.all_accepted_at = self.all_accepted_at or now

    def csms_call(self, action: str, outcome: str) -> None:
        """Count an answered CSMS-initiated CALL by its status or error code."""
        self.csms_calls[(action, outcome)] += 1

    def malformed(self, reason: str) -> None:
        """Count a frame that was not OCPP-J or answered nothing outstanding."""
        self.malformed_frames[reason.split(":")[0][:60]] += 1

    def transfer_done(self, kind: str, outcome: str) -> None:
        """Count a file transfer by kind and outcome."""
        self.transfers[(kind, outcome[:80])] += 1

    # --- connections ---------------------------------------------------------------------

    def connected(self) -> None:
        """A WebSocket opened."""
        self.connects += 1
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)

    def closed(self, reason: str) -> None:
        """A WebSocket closed (``reason``: who closed it and the code)."""
        self.open_connections -= 1
        self.disconnects[reason] += 1

    def connect_failed(self, reason: str) -> None:
        """A connection attempt failed."""
        self.connect_failures[reason] += 1

    def merge(self, other: Stats) -> None:
        """Add another process's stats to these (latencies included, so percentiles stay exact)."""
        for name, theirs in other.actions.items():
            mine = self._action(name)
            mine.sent += theirs.sent
            mine.ok += theirs.ok
            mine.errors.update(theirs.errors)
            mine.timeouts += theirs.timeouts
            mine.invalid += theirs.invalid
            mine.disconnected += theirs.disconnected
            mine.latencies.extend(theirs.latencies)
        for name in (
            "boots",
            "csms_calls",
            "transfers",
            "malformed_frames",
            "connect_failures",
            "disconnects",
            "unanswered_at_end",
            "internal_errors",
        ):
            getattr(self, name).update(getattr(other, name))
        if self.expected_chargers == 0:
            self.all_accepted_at = other.all_accepted_at
        elif self.all_accepted_at is not None and other.all_accepted_at is not None:
            self.all_accepted_at = max(self.all_accepted_at, other.all_accepted_at)
        else:
            self.all_accepted_at = None
        self.accepted |= other.accepted
        self.connects += other.connects
        self.open_connections += other.open_connections
        self.peak_connections += other.peak_connections
        self.pacer_skips += other.pacer_skips
        self.expected_chargers += other.expected_chargers
        for name in ("first_accepted_at",):
            values = [v for v in (getattr(self, name), getattr(other, name)) if v is not None]
            setattr(self, name, min(values) if values else None)

    def mark(self) -> Mark:
        """A point in the run; :meth:`window` reports what happened after it."""
        return Mark(
            {
                name: (a.sent, a.timeouts, len(a.latencies), Counter(a.errors), a.invalid)
                for name, a in self.actions.items()
            },
            self.pacer_skips,
        )

    def window(self, since: Mark) -> dict[str, Any]:
        """Per-action counts and latency percentiles of the CALLs ended after ``since``."""
        actions: dict[str, Any] = {}
        everything: list[float] = []
        totals = Counter[str]()
        for name, stats in sorted(self.actions.items()):
            sent, timeouts, answered, errors, invalid = since.actions.get(
                name, (0, 0, 0, Counter(), 0)
            )
            latencies = sorted(stats.latencies[answered:])
            everything.extend(latencies)
            row = {
                "sent": stats.sent - sent,
                "answered": len(latencies),
                "errors": sum((stats.errors - errors).values()) + stats.invalid - invalid,
                "timeouts": stats.timeouts - timeouts,
                **_latency_summary(latencies),
            }
            totals.update({k: row[k] for k in ("sent", "answered", "errors", "timeouts")})
            actions[name] = row
        everything.sort()
        return {
            "actions": actions,
            "overall": {**totals, **_latency_summary(everything)},
            "pacer_skips": self.pacer_skips - since.pacer_skips,
        }

    # --- totals ----------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Fleet-wide sent/answered/error/timeout counts (for the progress line)."""
        sent = ok = errors = timeouts = 0
        for stats in self.actions.values():
            sent += stats.sent
            ok += stats.ok
            errors += sum(stats.errors.values()) + stats.invalid
            timeouts += stats.timeouts
        return {"sent": sent, "ok": ok, "errors": errors, "timeouts": timeouts}

    def report(self, **run: Any) -> dict[str, Any]:
        """The run as a JSON-ready dict; ``run`` adds fields such as profile and duration."""
        actions: dict[str, Any] = {}
        for name in sorted(self.actions):
            stats = self.actions[name]
            ordered = sorted(stats.latencies)
            actions[name] = {
                "sent": stats.sent,
                "ok": stats.ok,
                "errors": dict(sorted(stats.errors.items())),
                "invalid": stats.invalid,
                "timeouts": stats.timeouts,
                "disconnected": stats.disconnected,
                "unanswered_at_end": self.unanswered_at_end.get(name, 0),
                **_latency_summary(ordered),
            }
        all_latencies = sorted(x for s in self.actions.values() for x in s.latencies)
        base = self.started_at
        csms: dict[str, dict[str, int]] = {}
        for (action, outcome), count in sorted(self.csms_calls.items()):
            csms.setdefault(action, {})[outcome] = count
        transfers: dict[str, dict[str, int]] = {}
        for (kind, outcome), count in sorted(self.transfers.items()):
            transfers.setdefault(kind, {})[outcome] = count
        return {
            **run,
            "chargers": self.expected_chargers,
            "connections": {
                "connects": self.connects,
                "peak_open": self.peak_connections,
                "open_at_end": self.open_connections,
                "connect_failures": dict(sorted(self.connect_failures.items())),
                "disconnects": dict(sorted(self.disconnects.items())),
            },
            "boot": {
                "answers": dict(sorted(self.boots.items())),
                "chargers_accepted": len(self.accepted),
                "first_accepted_s": _since(self.first_accepted_at, base),
                "all_accepted_s": _since(self.all_accepted_at, base),
            },
            "actions": actions,
            "overall": {**self.totals(), **_latency_summary(all_latencies)},
            "csms_calls": csms,
            "transfers": transfers,
            "malformed_frames": dict(sorted(self.malformed_frames.items())),
            "pacer_skips": self.pacer_skips,
            "internal_errors": dict(sorted(self.internal_errors.items())),
        }


def _since(moment: float | None, base: float) -> float | None:
    return None if moment is None else round(moment - base, 3)


def _latency_summary(ordered: list[float]) -> dict[str, float | None]:
    def ms(q: float) -> float | None:
        value = percentile(ordered, q)
        return None if math.isnan(value) else round(value * 1000.0, 3)

    return {
        "p50_ms": ms(50),
        "p90_ms": ms(90),
        "p99_ms": ms(99),
        "max_ms": ms(100),
    }


def render_table(report: dict[str, Any]) -> str:
    """The report as a text table: one row per action, then connection and boot lines."""
    header = (
        f"{'action':<30}{'sent':>8}{'ok':>8}{'err':>6}{'tmo':>6}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    lines = [header, "-" * len(header)]

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows = [*report["actions"].items(), ("TOTAL", report["overall"])]
    for name, row in rows:
        errors = row.get("errors", {})
        error_count = row.get("errors") if isinstance(errors, int) else sum(errors.values())
        error_count = int(error_count or 0) + int(row.get("invalid", 0) or 0)
        lines.append(
            f"{name:<30}{row['sent']:>8}{row['ok']:>8}{error_count:>6}{row['timeouts']:>6}"
            f"{fmt(row['p50_ms']):>9}{fmt(row['p90_ms']):>9}{fmt(row['p99_ms']):>9}"
            f"{fmt(row['max_ms']):>9}"
        )
    lines.append("")
    errors_by_code: Counter[str] = Counter()
    unanswered = 0
    for row in report["actions"].values():
        errors_by_code.update(row["errors"])
        if row["invalid"]:
            errors_by_code["schema-invalid CALLRESULT"] += row["invalid"]
        unanswered += row["unanswered_at_end"]
    conn = report["connections"]
    boot = report["boot"]
    lines.append(
        f"chargers {report['chargers']}, connects {conn['connects']}, peak open "
        f"{conn['peak_open']}, connect failures {sum(conn['connect_failures'].values())}"
        + _detail(conn["connect_failures"])
    )
    lines.append(f"disconnects {sum(conn['disconnects'].values())}" + _detail(conn["disconnects"]))
    lines.append(
        f"boot answers {_detail(boot['answers']).strip(' ()') or 'none'}; chargers Accepted "
        f"{boot['chargers_accepted']}/{report['chargers']}"
        + (
            f", all Accepted after {boot['all_accepted_s']:.3f} s"
            if boot["all_accepted_s"] is not None
            else ""
        )
    )
    lines.append(
        f"CALLERRORs by code {sum(errors_by_code.values())}" + _detail(dict(errors_by_code))
    )
    timeouts = report["overall"]["timeouts"]
    lines.append(f"timeouts {timeouts}, unanswered at end {unanswered}")
    if report.get("csms_calls"):
        answered = ", ".join(
            f"{action} {'/'.join(f'{k}:{v}' for k, v in outcomes.items())}"
            for action, outcomes in report["csms_calls"].items()
        )
        lines.append(f"CSMS calls answered: {answered}")
    for kind, outcomes in (report.get("transfers") or {}).items():
        lines.append(f"file {kind}s" + _detail(outcomes))
    if report.get("malformed_frames"):
        lines.append("malformed frames" + _detail(report["malformed_frames"]))
    if report.get("target_rate"):
        lines.append(
            f"rate: target {report['target_rate']}/s, achieved {report.get('achieved_rate', 0)}/s"
            f", pacer skips {report.get('pacer_skips', 0)}"
        )
    if report.get("internal_errors"):
        lines.append("internal errors" + _detail(report["internal_errors"]))
    return "\n".join(lines)


def _detail(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")"
