"""Reservation profile end to end: `gridlink reserve` / `reservations cancel` -> commands
service -> gateway -> a charger simulated here, and the reservations' stored lifecycle."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from services.ocpp16 import iso, utcnow
from tests.charger import Charger, now
from tests.helpers import add_station, add_tag, answer_next, new_id, new_tag
from tests.processes import Stack, finish, wait_for

pytestmark = pytest.mark.integration














async def connector_seen(charger: Charger, *connectors: int, status: str = "Available"
                         ) -> None:
    for connector in connectors:
        await charger.result("StatusNotification", {
            "connectorId": connector, "errorCode": "NoError", "status": status,
            "timestamp": now()})


async def reservation(stack: Stack, reservation_id: int) -> dict[str, Any] | None:
    document: dict[str, Any] | None = await stack.db().reservations.find_one(
        {"_id": reservation_id})
    return document


async def wait_status(stack: Stack, reservation_id: int, status: str) -> dict[str, Any]:
    async def reached() -> bool:
        document = await reservation(stack, reservation_id)
        return document is not None and document["status"] == status

    await wait_for(reached, what=f"reservation {reservation_id} {status}")
    document = await reservation(stack, reservation_id)
    assert document is not None
    return document


async def reserve(stack: Stack, charger: Charger, station: str, connector: int, tag: str,
                  *extra: str, answer: Any = None) -> tuple[list[Any], tuple[int, str, str]]:
    """`gridlink reserve`, answered by the charger (Accepted unless told otherwise)."""
    process = await stack.start_cli("reserve", station, str(connector), tag, *extra)
    frame = await answer_next(charger, "ReserveNow", answer or {"status": "Accepted"})
    return frame, await finish(process)


async def test_reservation_is_consumed_by_start_transaction(stack: Stack) -> None:
    station, tag, group = new_id("RSV"), new_tag("R"), new_tag("G")
    await add_station(stack, station)
    await add_tag(stack, group)
    await add_tag(stack, tag, parent=group)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1, 2)
        frame, (code, out, err) = await reserve(stack, charger, station, 2, tag,
                                                "--expires-in", "600")
        assert code == 0, err
        request = frame[3]
        result = json.loads(out)
        assert result["status"] == "Accepted"
        assert request["reservationId"] == result["reservationId"]
        assert isinstance(request["reservationId"], int)
        assert (request["connectorId"], request["idTag"], request["parentIdTag"]) == (
            2, tag, group)  # the parent comes from the id-tag store
        stored = await wait_status(stack, request["reservationId"], "active")
        assert (stored["station"], stored["connector"], stored["id_tag"]) == (station, 2, tag)
        assert stored["parent_id_tag"] == group
        assert iso(stored["expiry"]) == request["expiryDate"]

        code, out, _ = await stack.cli("reservations", "list", "--station", station, "--json")
        assert code == 0
        assert [(r["reservationId"], r["status"]) for r in json.loads(out)] == [
            (request["reservationId"], "active")]

        start = await charger.result("StartTransaction", {
            "connectorId": 2, "idTag": tag, "meterStart": 0, "timestamp": now(),
            "reservationId": request["reservationId"]})
        assert start["idTagInfo"]["status"] == "Accepted"
    used = await wait_status(stack, request["reservationId"], "used")
    assert used["transaction_id"] == start["transactionId"]


async def test_reservation_ids_are_unique_and_the_same_id_replaces(stack: Stack) -> None:
    station, tag, other = new_id("RSV"), new_tag("R"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    await add_tag(stack, other)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1, 2)
        first, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        second, _ = await reserve(stack, charger, station, 2, tag, "--expires-in", "600")
        assert first[3]["reservationId"] != second[3]["reservationId"]
        # §5.13: the same reservationId replaces that reservation (here: another tag).
        rid = first[3]["reservationId"]
        _, (code, _, err) = await reserve(stack, charger, station, 1, other,
                                          "--expires-in", "900", "--id", str(rid))
        assert code == 0, err
    async def replaced() -> bool:
        document = await reservation(stack, rid)
        return document is not None and document["id_tag"] == other

    await wait_for(replaced, what="reservation replaced")
    assert await stack.db().reservations.count_documents({"station": station}) == 2


async def test_reservation_expires(stack: Stack) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        frame, (code, _, err) = await reserve(stack, charger, station, 1, tag,
                                              "--expires-in", "2")
        assert code == 0, err
    expired = await wait_status(stack, frame[3]["reservationId"], "expired")
    assert expired["ended_at"] >= expired["expiry"]


async def test_cancel_reservation(stack: Stack) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        frame, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        rid = frame[3]["reservationId"]
        await wait_status(stack, rid, "active")
        process = await stack.start_cli("reservations", "cancel", str(rid))
        cancel = await answer_next(charger, "CancelReservation", {"status": "Accepted"})
        assert cancel[3] == {"reservationId": rid}
        code, out, err = await finish(process)
        assert code == 0, err
        assert json.loads(out) == {"reservationId": rid, "status": "Accepted"}
        assert (await reservation(stack, rid) or {})["status"] == "cancelled"
        # Cancelling again is refused before anything reaches the charger.
        code, _, err = await stack.cli("reservations", "cancel", str(rid))
        assert code == 1 and "invalid command: ReservationEnded" in err
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()


async def test_cancel_rejected_means_the_charger_holds_no_such_reservation(stack: Stack
                                                                          ) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        frame, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        rid = frame[3]["reservationId"]
        process = await stack.start_cli("reservations", "cancel", str(rid))
        await answer_next(charger, "CancelReservation", {"status": "Rejected"})
        code, _, err = await finish(process)
    assert code == 1
    assert err.strip() == f"gridlink: rejected: {station} answered CancelReservation Rejected"
    assert (await reservation(stack, rid) or {})["status"] == "terminated"


async def test_other_tag_on_a_reserved_connector(stack: Stack) -> None:
    """§5.13: the charger refuses other tags on a reserved connector, except the reserved
    tag's group. Authorize gives it what it needs (the parentIdTag); a StartTransaction by
    another tag there leaves the reservation and is recorded as a conflict; the group
    member's start uses it."""
    station, tag, group, member, other = (new_id("RSV"), new_tag("R"), new_tag("G"), new_tag("R"),
                                          new_tag("R"))
    await add_station(stack, station)
    await add_tag(stack, group)
    await add_tag(stack, tag, parent=group)
    await add_tag(stack, member, parent=group)
    await add_tag(stack, other)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        frame, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        rid = frame[3]["reservationId"]
        await wait_status(stack, rid, "active")
        stranger = await charger.result("Authorize", {"idTag": other})
        assert stranger["idTagInfo"] == {"status": "Accepted"}  # no group: charger refuses
        friend = await charger.result("Authorize", {"idTag": member})
        assert friend["idTagInfo"]["parentIdTag"] == frame[3]["parentIdTag"] == group

        intruder = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": other, "meterStart": 0, "timestamp": now()})

        async def conflict_recorded() -> bool:
            document = await reservation(stack, rid)
            return bool(document and document.get("conflicts"))

        await wait_for(conflict_recorded, what="conflict recorded on the reservation")
        document = await reservation(stack, rid)
        assert document is not None and document["status"] == "active"
        assert [(c["transaction_id"], c["id_tag"]) for c in document["conflicts"]] == [
            (intruder["transactionId"], other)]
        await charger.result("StopTransaction", {
            "transactionId": intruder["transactionId"], "meterStop": 10, "timestamp": now()})

        start = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": member, "meterStart": 10, "timestamp": now()})
    used = await wait_status(stack, rid, "used")
    assert (used["transaction_id"], used["used_by"]) == (start["transactionId"], member)


async def test_connector_zero_follows_the_station_and_any_connector_consumes_it(
        stack: Stack) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)

    async def configured(value: str) -> None:
        process = await stack.start_cli("command", station, "GetConfiguration",
                                        '{"key": ["ReserveConnectorZeroSupported"]}')
        await answer_next(charger, "GetConfiguration", {"configurationKey": [
            {"key": "ReserveConnectorZeroSupported", "readonly": True, "value": value}]})
        assert (await finish(process))[0] == 0

    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1, 2)
        # Not known yet: sent, and the charger answers.
        frame, (code, _, err) = await reserve(stack, charger, station, 0, tag, "--expires-in",
                                              "60", answer={"status": "Rejected"})
        assert frame[3]["connectorId"] == 0
        assert code == 1 and "rejected" in err
        # Known unsupported: refused before it reaches the charger.
        await configured("false")
        code, _, err = await stack.cli("reserve", station, "0", tag, "--expires-in", "60")
        assert code == 1 and "invalid command: ConnectorZeroNotSupported" in err
        # Known supported: sent.
        await configured("true")
        frame, (code, _, err) = await reserve(stack, charger, station, 0, tag,
                                              "--expires-in", "600")
        assert code == 0, err
        rid = frame[3]["reservationId"]
        await wait_status(stack, rid, "active")
        start = await charger.result("StartTransaction", {
            "connectorId": 2, "idTag": tag, "meterStart": 0, "timestamp": now()})
    used = await wait_status(stack, rid, "used")
    assert (used["transaction_id"], used["used_on"]) == (start["transactionId"], 2)


async def test_faulted_connector_ends_its_reservation(stack: Stack) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1, 2)
        one, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        two, _ = await reserve(stack, charger, station, 2, tag, "--expires-in", "600")
        await wait_status(stack, two[3]["reservationId"], "active")
        await connector_seen(charger, 1, status="Faulted")
        ended = await wait_status(stack, one[3]["reservationId"], "terminated")
        assert "Faulted" in ended["ended_reason"]
        # Connector 2 is untouched.
        assert (await reservation(stack, two[3]["reservationId"]) or {})["status"] == "active"


@pytest.mark.parametrize(("answer", "message"), [
    ({"status": "Occupied"}, "rejected: {station} answered ReserveNow Occupied"),
    (("InternalError", "reservation store full"), "CALLERROR: InternalError reservation "
                                                  "store full"),
    ({"status": "Perhaps"}, "CALLERROR: PropertyConstraintViolation"),
])
async def test_declined_or_broken_answers_store_nothing(stack: Stack, answer: Any,
                                                        message: str) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        frame, (code, out, err) = await reserve(stack, charger, station, 1, tag,
                                                "--expires-in", "600", answer=answer)
        assert code == 1 and out == ""
        assert message.format(station=station) in err and len(err.strip().splitlines()) == 1
        command = await stack.db().commands.find_one({"station": station,
                                                      "action": "ReserveNow"})
        assert command["status"] in ("rejected", "callerror")
        # The service is alive and the connector is free for another reservation.
        again, (code, _, err) = await reserve(stack, charger, station, 1, tag,
                                              "--expires-in", "600")
        assert code == 0, err
    assert await reservation(stack, frame[3]["reservationId"]) is None
    assert (await reservation(stack, again[3]["reservationId"]) or {})["status"] == "active"


async def test_bad_reservations_never_reach_the_charger(stack: Stack) -> None:
    station, elsewhere = new_id("RSV"), new_id("RSV")
    tag, blocked = new_tag("R"), new_tag("R")
    await add_station(stack, station)
    await add_station(stack, elsewhere)
    await add_tag(stack, tag)
    await add_tag(stack, blocked, status="Blocked")
    async with Charger.connect(stack.gateway_url, elsewhere) as other:
        await other.boot()
        await connector_seen(other, 1)
        foreign, _ = await reserve(stack, other, elsewhere, 1, tag, "--expires-in", "600")
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
        held, _ = await reserve(stack, charger, station, 1, tag, "--expires-in", "600")
        await wait_status(stack, held[3]["reservationId"], "active")
        before = await stack.db().commands.count_documents({"station": station})
        past = iso(utcnow() - timedelta(minutes=1))
        cases = [
            (["reserve", station, "7", tag, "--expires-in", "60"], "UnknownConnector"),
            (["reserve", station, "1", tag, "--expires-in", "60"], "ConnectorReserved"),
            (["reserve", station, "1", blocked, "--expires-in", "60"], "IdTagNotAccepted"),
            (["reserve", station, "1", new_tag("R"), "--expires-in", "60"], "IdTagNotAccepted"),
            (["reserve", station, "1", tag, "--expires-in", "60", "--id",
              str(foreign[3]["reservationId"])], "ReservationIdInUse"),
            (["command", station, "ReserveNow", json.dumps({
                "connectorId": 1, "expiryDate": past, "idTag": tag, "reservationId": 999})],
             "expiryDate is in the past"),
            (["command", station, "ReserveNow", json.dumps({
                "connectorId": 1, "idTag": tag, "reservationId": 999})],
             "OccurenceConstraintViolation"),
            (["command", station, "CancelReservation", '{"reservationId": 2147480000}'],
             "UnknownReservation"),
            (["command", station, "CancelReservation", json.dumps(
                {"reservationId": foreign[3]["reservationId"]})], "UnknownReservation"),
        ]
        answers = await asyncio.gather(*(stack.cli(*args) for args, _ in cases))
        for (args, needle), (code, out, err) in zip(cases, answers, strict=True):
            assert code == 1 and out == "", (args, err)
            assert "invalid command" in err and needle in err, (args, err)
            assert len(err.strip().splitlines()) == 1
        code, _, err = await stack.cli("reservations", "cancel", "2147480001")
        assert code == 1 and "no reservation 2147480001" in err
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()
    assert await stack.db().commands.count_documents({"station": station}) == before


async def test_reserve_on_an_offline_station(stack: Stack) -> None:
    station, tag = new_id("RSV"), new_tag("R")
    await add_station(stack, station)
    await add_tag(stack, tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await connector_seen(charger, 1)
    code, out, err = await stack.cli("reserve", station, "1", tag, "--expires-in", "60")
    assert code == 1 and out == ""
    assert err.startswith("gridlink: station offline")
    assert await stack.db().reservations.count_documents({"station": station}) == 0
