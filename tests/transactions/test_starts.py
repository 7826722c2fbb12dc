"""StartTransaction's rules over the in-memory store: one transaction per connector (a new
start supersedes the unfinished one), a tag's concurrent sessions limited by its slots,
retransmissions that find what they started, keys that no station id or tag can confuse."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.transaction_records import state_of
from tests.transactions.conftest import NOW, Transactions
from transactions.handlers import build_router
from transactions.natural_keys import legacy_start_key
from transactions.repository import TransactionRepository
from transactions.transaction_ids import TransactionIds


def superseded_count() -> float:
    return REGISTRY.get_sample_value("gridlink_transactions_superseded_total") or 0.0


async def test_a_new_start_on_the_connector_supersedes_the_unfinished_one(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    before = superseded_count()
    first = await tx.start(meter=1000)
    await tx.answer("MeterValues", {"connectorId": 1, "transactionId": first["transactionId"],
                                    "meterValue": [{"timestamp": "2026-06-01T11:20:00Z",
                                                    "sampledValue": [{"value": "1.5",
                                                                      "unit": "kWh"}]}]})
    # The charger lost power: no StopTransaction, and its clock now says 2000.
    second = await tx.call("StartTransaction", tx.start_payload(
        meter=1600, at="2000-01-01T00:00:00Z"), received_at=NOW + timedelta(minutes=40))
    assert second.reply is not None and second.reply.payload is not None
    answer = second.reply.payload
    assert answer["idTagInfo"] == {"status": "Accepted"}
    assert answer["transactionId"] != first["transactionId"]
    old = await tx.transaction(first["transactionId"])
    assert (old["active"], state_of(old), old["flags"]) == (False, "superseded", ["superseded"])
    assert old["superseded"]["by"] == answer["transactionId"]
    assert old["superseded"]["received_at"] == NOW + timedelta(minutes=40)
    assert old["energy_wh"] == old["superseded"]["energy_wh"] == 500  # 1.5 kWh - 1000 Wh
    assert old["stop"] is None
    assert state_of(await tx.transaction(answer["transactionId"])) == "active"
    assert superseded_count() == before + 1
    assert [(e.routing_key, e.body["transaction_id"], e.body.get("superseded_by"))
            for e in second.events] == [
        ("transaction.started", answer["transactionId"], None),
        ("transaction.stopped", first["transactionId"], answer["transactionId"])]
    assert await tx.slot_holders("TAG") == [
        (await tx.transaction(answer["transactionId"]))["start_key"]]


async def test_the_real_stop_of_a_superseded_transaction_still_completes_it(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    first = await tx.start(meter=1000)
    second = await tx.start(meter=2000, at="2026-06-01T11:45:00Z")
    assert second["idTagInfo"]["status"] == "Accepted"
    assert (await tx.transaction(first["transactionId"]))["energy_wh"] is None  # no samples
    assert await tx.stop(first["transactionId"], 1800) == {}
    old = await tx.transaction(first["transactionId"])
    assert (state_of(old), old["energy_wh"], old["stop"]["meter_stop"]) == ("stopped", 800, 1800)
    assert old["superseded"]["by"] == second["transactionId"]  # what happened stays known
    new = await tx.transaction(second["transactionId"])
    assert new["active"] and await tx.slot_holders("TAG") == [new["start_key"]]
    await tx.stop(second["transactionId"], 2100)
    await tx.stop(second["transactionId"], 2100)  # redelivered: releasing again is harmless
    assert await tx.slot_holders("TAG") == []
    assert (await tx.start(connector=2, at="2026-06-01T13:00:00Z"))["idTagInfo"][
        "status"] == "Accepted"


async def test_a_retransmitted_start_gets_its_id_and_supersedes_nothing(tx: Transactions
                                                                        ) -> None:
    await tx.tag("TAG")
    first = await tx.start()
    assert await tx.start() == first  # the .conf was lost: the same answer
    assert (await tx.transaction(first["transactionId"]))["active"]
    assert await tx.db["transactions"].count_documents({}) == 1
    second = await tx.start(meter=1500, at="2026-06-01T12:00:00Z")
    # The first start once more, after the second (a message resent from the charger's
    # queue): still its own id and answer, and the second stays the connector's.
    assert await tx.start() == first
    assert (await tx.transaction(second["transactionId"]))["active"]
    assert (await tx.transaction(first["transactionId"]))["superseded"]["by"] == \
        second["transactionId"]
    again = await tx.call("StartTransaction", tx.start_payload(
        meter=1500, at="2026-06-01T12:00:00Z"))
    assert again.reply is not None and again.reply.payload == second
    assert [(e.routing_key, e.body["transaction_id"]) for e in again.events] == [
        ("transaction.started", second["transactionId"]),
        ("transaction.stopped", first["transactionId"])]  # events at least once
    assert await tx.db["transactions"].count_documents({}) == 2


async def test_a_start_that_arrives_after_a_newer_one_is_superseded_on_arrival(
        tx: Transactions) -> None:
    """A start received earlier but handled later (it waited in a queue while the charger
    gave up on it and went on) does not take the connector from the newer one."""
    await tx.tag("TAG")
    newer = await tx.start(meter=2000, at="2026-06-01T11:10:00Z")
    late = await tx.call("StartTransaction", tx.start_payload(meter=1000),
                         received_at=NOW - timedelta(minutes=5))
    assert late.reply is not None and late.reply.payload is not None
    assert late.reply.payload["idTagInfo"] == {"status": "Accepted"}  # answered normally
    stale = await tx.transaction(late.reply.payload["transactionId"])
    assert state_of(stale) == "superseded" and stale["superseded"]["by"] == \
        newer["transactionId"]
    current = await tx.transaction(newer["transactionId"])
    assert current["active"] and await tx.slot_holders("TAG") == [current["start_key"]]
    assert [(e.routing_key, e.body["transaction_id"]) for e in late.events] == [
        ("transaction.started", stale["_id"]), ("transaction.stopped", stale["_id"])]


async def test_concurrent_tx_is_for_the_tag_on_another_connector_or_station(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    first = await tx.start()
    other_connector = await tx.start(connector=2, at="2026-06-01T11:01:00Z")
    other_station = await tx.start(at="2026-06-01T11:02:00Z", station="CP-2")
    assert other_connector["idTagInfo"]["status"] == "ConcurrentTx"
    assert other_station["idTagInfo"]["status"] == "ConcurrentTx"
    assert (await tx.transaction(first["transactionId"]))["active"]  # nobody superseded it
    assert len(await tx.slot_holders("TAG")) == 1
    await tx.stop(first["transactionId"], 1100)
    assert (await tx.start(at="2026-06-01T11:40:00Z", station="CP-2"))["idTagInfo"][
        "status"] == "Accepted"


async def test_a_fleet_card_may_have_its_number_of_sessions(tx: Transactions) -> None:
    await tx.tag("FLEET", max_concurrent=3)
    answers = [await tx.start("FLEET", station=f"CP-{n}") for n in range(4)]
    assert [a["idTagInfo"]["status"] for a in answers] == ["Accepted"] * 3 + ["ConcurrentTx"]
    assert await tx.start("FLEET", station="CP-1") == answers[1]  # full, still its answer
    assert len(await tx.slot_holders("FLEET")) == 3
    await tx.stop(answers[0]["transactionId"], 1500, station="CP-0")
    assert (await tx.start("FLEET", station="CP-9"))["idTagInfo"]["status"] == "Accepted"
    await tx.tag("FLEET")  # updated without --max-concurrent: the limit stays
    assert (await tx.db["id_tags"].find_one({"_id": "FLEET"}))["max_concurrent"] == 3


@pytest.mark.parametrize("limit", [1, 2])
async def test_starts_at_once_take_no_more_than_the_tag_allows(tx: Transactions,
                                                               limit: int) -> None:
    """Interleaved at every await (the integration test does it with two processes)."""
    await tx.tag("FLEET", max_concurrent=limit)
    answers = await asyncio.gather(*(tx.start("FLEET", station=f"CP-{n}")
                                     for n in range(12)))
    statuses = [a["idTagInfo"]["status"] for a in answers]
    assert statuses.count("Accepted") == limit
    assert statuses.count("ConcurrentTx") == 12 - limit
    assert len(await tx.slot_holders("FLEET")) == limit


async def test_a_delivery_broken_after_its_insert_is_finished_by_the_redelivery(
        tx: Transactions, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction is stored before its slot is taken; a redelivery after a failure at
    any later step gets the same id, one slot, the same answer as a retransmission."""
    await tx.tag("TAG")
    real_settle = tx.repo.settle

    async def fail(*args: Any) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(tx.repo, "settle", fail)
    with pytest.raises(ConnectionError):
        await tx.call("StartTransaction", tx.start_payload())
    [stored] = await tx.db["transactions"].find({}).to_list()
    assert stored["settled"] is False and len(await tx.slot_holders("TAG")) == 1
    monkeypatch.setattr(tx.repo, "settle", real_settle)
    answer = await tx.start()
    assert answer == {"transactionId": stored["_id"], "idTagInfo": {"status": "Accepted"}}
    assert await tx.slot_holders("TAG") == [stored["start_key"]]
    assert (await tx.transaction(stored["_id"]))["settled"] is True
    assert await tx.start() == answer


async def test_keys_that_joined_with_a_bar_no_longer_collide(tx: Transactions) -> None:
    """Station ``CP|1`` with tag ``T`` and station ``CP`` with tag ``1|T`` had one key."""
    await tx.tag("T")
    await tx.tag("1|T")
    assert legacy_start_key("CP|1", 1, "T", NOW, 0) == legacy_start_key("CP", 1, "1|T", NOW, 0)
    one = await tx.start("T", meter=0, station="CP|1")
    two = await tx.start("1|T", meter=0, station="CP")
    assert one["transactionId"] != two["transactionId"]
    assert (await tx.transaction(two["transactionId"]))["station"] == "CP"
    assert (await tx.transaction(one["transactionId"]))["active"]


async def test_a_transaction_of_an_earlier_release_is_found_only_by_its_station(
        tx: Transactions) -> None:
    await tx.tag("T")
    await tx.tag("1|T")
    timestamp = NOW - timedelta(hours=1)
    old: dict[str, Any] = {
        "_id": 999, "start_key": legacy_start_key("CP|1", 1, "T", timestamp, 0),
        "station": "CP|1", "connector": 1, "id_tag": "T", "meter_start": 0,
        "start_time": timestamp, "id_tag_info": {"status": "Accepted"}, "active": True,
        "stop": None, "received_at": timestamp}
    await tx.db["transactions"].insert_one(old)
    at = "2026-06-01T11:00:00.000Z"
    assert await tx.start("T", meter=0, at=at, station="CP|1") == {
        "transactionId": 999, "idTagInfo": {"status": "Accepted"}}  # its retransmission
    other = await tx.start("1|T", meter=0, at=at, station="CP")
    assert other["transactionId"] != 999
    assert (await tx.transaction(999))["active"]


@pytest.mark.parametrize("later_first", [False, True])
async def test_two_starts_on_one_connector_at_once_leave_the_later_one(
        tx: Transactions, later_first: bool) -> None:
    """Deliveries interleaved at every await: whichever runs first, the one received later
    keeps the connector and the only slot; the other is superseded and holds none."""
    await tx.tag("TAG")
    early = tx.call("StartTransaction", tx.start_payload(meter=1), received_at=NOW)
    late = tx.call("StartTransaction", tx.start_payload(meter=2),
                   received_at=NOW + timedelta(seconds=1))
    calls = [late, early] if later_first else [early, late]
    done = await asyncio.gather(*calls)
    if later_first:
        done.reverse()
    ids = [d.reply.payload["transactionId"] for d in done if d.reply and d.reply.payload]
    first, second = [await tx.transaction(i) for i in ids]
    assert (first["active"], second["active"]) == (False, True)
    assert first["superseded"]["by"] == second["_id"]
    assert await tx.slot_holders("TAG") == [second["start_key"]]
    assert [d.reply.payload["idTagInfo"]["status"] for d in done
            if d.reply and d.reply.payload] == ["Accepted", "Accepted"]


async def test_a_slot_left_behind_is_freed_when_the_tag_needs_it(tx: Transactions) -> None:
    """A slot whose transaction is no longer an Accepted active one (a delivery that never
    finished its release) is not a reason for ConcurrentTx."""
    await tx.tag("TAG")
    first = await tx.start()
    stored = await tx.transaction(first["transactionId"])
    await tx.db["transactions"].update_one({"_id": stored["_id"]},
                                           {"$set": {"active": False}})
    assert await tx.slot_holders("TAG") == [stored["start_key"]]  # left behind
    second = await tx.start(connector=2, at="2026-06-01T11:40:00Z", station="CP-2")
    assert second["idTagInfo"]["status"] == "Accepted"
    assert await tx.slot_holders("TAG") == [
        (await tx.transaction(second["transactionId"]))["start_key"]]
    third = await tx.start(connector=3, at="2026-06-01T11:41:00Z", station="CP-3")
    assert third["idTagInfo"]["status"] == "ConcurrentTx"  # a live holder stays


@pytest.mark.parametrize("later_first", [False, True])
async def test_two_replicas_starting_on_one_connector_at_once_leave_the_later_one(
        tx: Transactions, later_first: bool) -> None:
    """Two replicas (each its own read and write batchers) over one database: the start
    received later keeps the connector and the only slot, whichever runs first."""
    other = TransactionRepository(tx.repo.db, TransactionIds(tx.repo.db, block=10))
    replica = Transactions(other, build_router(other))
    await tx.tag("TAG")
    early = tx.call("StartTransaction", tx.start_payload(meter=1), received_at=NOW)
    late = replica.call("StartTransaction", replica.start_payload(meter=2),
                        received_at=NOW + timedelta(seconds=1))
    done = await asyncio.gather(*([late, early] if later_first else [early, late]))
    if later_first:
        done.reverse()
    ids = [d.reply.payload["transactionId"] for d in done if d.reply and d.reply.payload]
    first, second = [await tx.transaction(i) for i in ids]
    assert (first["active"], second["active"]) == (False, True)
    assert await tx.slot_holders("TAG") == [second["start_key"]]


async def test_concurrent_starts_share_round_trips(tx: Transactions) -> None:
    """Starts in flight together look up in shared queries; their inserts, slots and settles go
    through the batcher (one bulk per collection for the writes waiting together)."""
    for n in range(8):
        await tx.tag(f"T{n}")
    reads, ops = tx.repo.reads.queries, tx.repo.writes.ops
    answers = await asyncio.gather(*(tx.start(f"T{n}", station=f"CP-{n}") for n in range(8)))
    assert {a["idTagInfo"]["status"] for a in answers} == {"Accepted"}
    assert len({a["transactionId"] for a in answers}) == 8
    assert tx.repo.writes.ops - ops == 24  # 8 transactions, 8 slots, 8 settles
    # alone: 8 x (2 key lookups + tag + connector) queries
    assert tx.repo.reads.queries - reads < 32
