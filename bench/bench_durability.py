"""What "answered means durable" costs per message: the database writes of a message with the
write concern production uses (``w: "majority", j: true``) against the same writes without
journaling (``j: false``), on the same on-disk SecantusDB in the same run.

The server runs without ``--sync-on-commit`` (as ``gridlink run all`` would not need to with
``j: true``), so ``j`` alone decides whether a commit waits for the journal's fsync. Two
kinds of message, both through GridLink's own code and clients (services/store.py):

- MeterValues: its sample documents through the transactions repository and its write
  batcher (concurrent messages share one bulk write, hence one fsync);
- a single upsert by ``_id`` per message, as a StopTransaction or a command record makes
  (no batching: one fsync each, the worst case).

Each at 1 and at N messages in flight. Results: messages per second, latency per message
(p50, p99), and the ratio j:true / j:false.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo.write_concern import WriteConcern

from bench import results
from bench.processes import free_port, port_open
from gridlink import embedded_db
from services.ocpp16 import utcnow
from services.store import client_for
from transactions.meter_samples import sample_documents
from transactions.repository import TransactionRepository
from transactions.transaction_ids import TransactionIds

Message = Callable[[int, int], Awaitable[None]]  # (worker, n) -> one message's writes


async def _cell(message: Message, in_flight: int, count: int) -> dict[str, float]:
    """``count`` messages, ``in_flight`` at a time: rate and latency."""
    latencies: list[float] = []
    per_worker = max(1, count // in_flight)

    async def worker(w: int) -> None:
        for n in range(per_worker):
            began = time.perf_counter()
            await message(w, n)
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rate": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


async def _measure(url: str, in_flights: tuple[int, ...], count: int
                   ) -> dict[tuple[str, int, bool], dict[str, float]]:
    measured: dict[tuple[str, int, bool], dict[str, float]] = {}
    for journal in (False, True) * 3:  # three times each, interleaved: the best counts
        client: Any = client_for(url, app_name="bench-durability",
                                 concern=WriteConcern(w="majority", j=journal))
        try:
            db = client[f"bench_durability_{int(journal)}"]
            repo = TransactionRepository(db, TransactionIds(db, block=100))

            async def meter_values(worker: int, n: int, repo: Any = repo) -> None:
                await repo.insert_new_samples(sample_documents(
                    f"BENCH-{worker}", 1, worker * 1_000_000 + n, [{
                        "timestamp": utcnow().isoformat(), "sampled_value": [
                            {"value": str(n), "measurand": "Energy.Active.Import.Register",
                             "unit": "Wh"}]}], utcnow()))

            async def upsert(worker: int, n: int, db: Any = db) -> None:
                await db["records"].update_one(
                    {"_id": f"{worker}-{n}-{time.monotonic_ns()}"},
                    {"$set": {"worker": worker, "n": n, "at": utcnow()}}, upsert=True)

            for name, message in (("MeterValues (batched)", meter_values),
                                  ("single upsert", upsert)):
                for in_flight in in_flights:
                    cells = count if in_flight > 1 else max(50, count // 10)
                    cell = await _cell(message, in_flight, cells)
                    key = (name, in_flight, journal)
                    if key not in measured or cell["rate"] > measured[key]["rate"]:
                        measured[key] = cell
        finally:
            await client.close()
    return measured


def run(*, count: int = 2000, in_flights: tuple[int, ...] = (1, 32)) -> Path:
    """Start an on-disk SecantusDB, measure, write bench/results/durability.md."""
    with tempfile.TemporaryDirectory(prefix="gridlink-bench-durability-") as home:
        port = free_port()
        process = embedded_db.start(port, str(Path(home) / "db"), sync_on_commit=False,
                                    log_file=Path(home) / "secantusd.log")
        assert process is not None and port_open(port)
        try:
            measured = asyncio.run(_measure(embedded_db.url(port), in_flights, count))
        finally:
            process.terminate()
            process.wait(30)
    rows = []
    for name in ("MeterValues (batched)", "single upsert"):
        for in_flight in in_flights:
            off, on = measured[(name, in_flight, False)], measured[(name, in_flight, True)]
            rows.append([name, in_flight, off["rate"], on["rate"], on["rate"] / off["rate"],
                         off["p50_ms"], on["p50_ms"], on["p50_ms"] - off["p50_ms"],
                         off["p99_ms"], on["p99_ms"]])
    body = results.table(
        ["message", "in flight", "msg/s j:false", "msg/s j:true", "rate ratio",
         "p50 ms j:false", "p50 ms j:true", "p50 added ms", "p99 ms j:false",
         "p99 ms j:true"], rows)
    notes = ("Same server, same run, interleaved (j:false, j:true, three times each; the best "
             "round counts). `w: \"majority\"` in both: on the one-node embedded "
             "server it waits for nothing more than w:1. The disk is the machine's virtual "
             "disk; a replica set adds the round trip to a second member on top (w:majority).")
    return results.write("durability", "Durability: the cost of j:true per message", body,
                         database="SecantusDB, on disk (WiredTiger journal), without "
                         "--sync-on-commit", notes=notes)


if __name__ == "__main__":
    run()
