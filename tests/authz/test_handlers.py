"""authz's handlers over the in-memory store and bus (admission: test_admission.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from authz.repository import AuthzRepository
from authz.service import SPEC
from services import id_tags, stations
from services.envelope import ChargerCall
from services.runtime import ServiceRuntime
from tests.helpers import memory_runtime

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def call(action: str, payload: dict[str, Any], station: str = "CP-1", *, session: str = "s",
         unique_id: str = "u1") -> ChargerCall:
    return ChargerCall(station=station, session=session, unique_id=unique_id, action=action,
                       payload=payload, received_at=NOW)


async def started(**settings: Any) -> ServiceRuntime:
    runtime = memory_runtime(SPEC, **settings)
    runtime.service = SPEC.build(runtime)
    return runtime


async def dispatch(runtime: ServiceRuntime, action: str, payload: dict[str, Any],
                   station: str = "CP-1", **ids: str) -> Any:
    assert runtime.service is not None
    return await runtime.service.router.dispatch(call(action, payload, station, **ids))


async def test_boot_answers_the_registration_and_records_the_charger() -> None:
    runtime = await started(heartbeat_interval_s=120)
    db = runtime.store.db
    await stations.add_station(db, "PENDING-1", registration="Pending", password=None, now=NOW)
    boot = {"chargePointVendor": "Acme", "chargePointModel": "X"}
    known = await dispatch(runtime, "BootNotification", boot, "PENDING-1")
    unknown = await dispatch(runtime, "BootNotification", boot, "NEW-1")
    assert known.reply.payload["status"] == "Pending"
    assert known.reply.payload["interval"] == 120
    assert unknown.reply.payload["status"] == "Accepted"  # the default registration
    stored = await db[stations.COLLECTION].find_one({"_id": "PENDING-1"})
    assert stored["boot"]["charge_point_vendor"] == "Acme" and stored["last_boot"] == NOW
    assert [(e.routing_key, e.body["registration"]) for e in known.events] == [
        ("station.booted", "Pending")]


async def test_authorize_judges_the_tag_store() -> None:
    runtime = await started()
    db = runtime.store.db
    await id_tags.upsert_tag(db, "OK", status="Accepted", expiry=None, parent="FLEET")
    await id_tags.upsert_tag(db, "OLD", status="Accepted", expiry=NOW - timedelta(days=1),
                             parent=None)
    await id_tags.upsert_tag(db, "NO", status="Blocked", expiry=None, parent=None)
    answers = {tag: (await dispatch(runtime, "Authorize", {"idTag": tag})).reply.payload
               for tag in ("OK", "OLD", "NO", "WHO")}
    assert answers["OK"] == {"idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}}
    assert answers["OLD"]["idTagInfo"]["status"] == "Expired"
    assert answers["NO"]["idTagInfo"] == {"status": "Blocked"}
    assert answers["WHO"]["idTagInfo"] == {"status": "Invalid"}


async def test_data_transfer_is_stored_once_and_known_vendors_accepted() -> None:
    runtime = await started(data_transfer_vendors=["com.acme"])
    payload = {"vendorId": "com.acme", "messageId": "m", "data": "d"}
    first = await dispatch(runtime, "DataTransfer", payload)
    again = await dispatch(runtime, "DataTransfer", payload)  # redelivered: the same id
    other = await dispatch(runtime, "DataTransfer", {"vendorId": "org.other"}, unique_id="u2")
    assert first.reply.payload == again.reply.payload == {"status": "Accepted"}
    assert other.reply.payload == {"status": "UnknownVendorId"}
    assert await runtime.store.db["data_transfers"].count_documents({}) == 2


async def test_a_call_id_reused_after_a_reconnect_is_a_new_data_transfer() -> None:
    runtime = await started()
    db = runtime.store.db
    await dispatch(runtime, "DataTransfer", {"vendorId": "v", "data": "before"},
                   session="first", unique_id="1")
    await dispatch(runtime, "DataTransfer", {"vendorId": "v", "data": "before"},
                   session="first", unique_id="1")  # the same broker message, redelivered
    await dispatch(runtime, "DataTransfer", {"vendorId": "v", "data": "after"},
                   session="second", unique_id="1")  # the charger counts from 1 again
    await dispatch(runtime, "DataTransfer", {"vendorId": "v", "data": "other station"},
                   station="CP-2", session="first", unique_id="1")
    stored = [d async for d in db["data_transfers"].find({"station": "CP-1"},
                                                         sort=[("session", 1)])]
    assert [(d["session"], d["unique_id"], d["request"]["data"]) for d in stored] == [
        ("first", "1", "before"), ("second", "1", "after")]
    assert await db["data_transfers"].count_documents({"station": "CP-2"}) == 1


async def test_an_oversized_data_transfer_is_rejected_and_only_its_size_kept() -> None:
    runtime = await started(data_transfer_vendors=["v"], max_data_transfer_bytes=8)
    db = runtime.store.db
    fits = await dispatch(runtime, "DataTransfer", {"vendorId": "v", "data": "€€"},
                          unique_id="fits")  # 6 bytes in UTF-8
    large = await dispatch(runtime, "DataTransfer", {"vendorId": "v", "messageId": "m",
                                                     "data": "€€€"}, unique_id="large")
    assert fits.reply.payload == {"status": "Accepted"}
    assert large.reply.payload == {"status": "Rejected"}  # 9 bytes: one beyond the limit
    kept = await db["data_transfers"].find_one({"unique_id": "large"})
    assert kept is not None
    assert kept["request"] == {"vendorId": "v", "messageId": "m"}  # no data
    assert (kept["data_bytes"], kept["status"], kept["rejected"]) == (9, "Rejected",
                                                                      "data_too_large")
    small = await db["data_transfers"].find_one({"unique_id": "fits"})
    assert small is not None and small["request"]["data"] == "€€" and "rejected" not in small


async def test_heartbeat_moves_last_seen_forward_only() -> None:
    runtime = await started()
    db = runtime.store.db
    await stations.add_station(db, "CP-1", registration="Accepted", password=None, now=NOW)
    repo = AuthzRepository(db, default_registration="Accepted")
    await repo.record_seen("CP-1", NOW)
    await repo.record_seen("CP-1", NOW - timedelta(minutes=5))  # late: changes nothing
    assert (await db[stations.COLLECTION].find_one({"_id": "CP-1"}))["last_seen"] == NOW
