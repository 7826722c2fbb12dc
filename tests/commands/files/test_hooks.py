"""The files feature in the command path, against the real database (SecantusDB) over the
in-memory bus: download tokens given and checked before UpdateFirmware and
SignedUpdateFirmware are recorded, requestIds claimed, GetLog's upload token registered, jobs
opened from the answers, and security events from signed-firmware failures."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import pytest

from commands.files import download_tokens, repository, rules, signatures, upload_tokens
from commands.files import hooks as files
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import CommandRepository
from commands.service import SPEC
from services import security_events, stations
from services.envelope import ChargerCall, CommandRequest
from services.errors import CommandRefused
from services.memory import MemoryBus
from services.ocpp16 import iso, utcnow
from services.router import Router
from services.runtime import ServiceRuntime
from services.store import Store
from services.topology import Topology
from tests.helpers import certificate, ec_key, memory_settings, pem

BASE = "https://files.gl.example"
IMAGE = b"firmware image " * 1000


class Feature:
    """The files feature of one commands process, over a scratch database."""

    def __init__(self, mongo_client: Any) -> None:
        settings = memory_settings(files_public_url=BASE)
        self.db_name = f"hooks_{uuid.uuid4().hex[:10]}"
        self.runtime = ServiceRuntime(SPEC, settings,
                                      bus=MemoryBus(Topology.from_settings(settings)),
                                      store=Store.over(mongo_client, self.db_name,
                                                       component="test"))
        self.db = self.runtime.store.db
        self.hooks = CommandHooks(runtime=self.runtime, router=Router("commands"))
        self.lifecycle = Lifecycle(self.runtime, CommandRepository(self.db), self.hooks)
        files.register(self.hooks, self.lifecycle)

    async def validate(self, action: str, payload: dict[str, Any], command_id: str = "c1",
                       station: str = "CP1") -> CommandRequest:
        return await self.lifecycle.validate(CommandRequest(
            command_id=command_id, station=station, action=action, payload=payload))

    async def after(self, command: dict[str, Any]) -> None:
        for hook in self.hooks.after_final[command["action"]]:
            await hook(self.runtime, command)


@pytest.fixture
async def feature(mongo_client: Any) -> Feature:
    feature = Feature(mongo_client)
    for station in ("CP1", "CP2"):
        await stations.add_station(feature.db, station, registration="Accepted",
                                   password=None, now=utcnow())
    return feature


async def signed_image(db: repository.Db, name: str = "cp.bin") -> dict[str, Any]:
    key = ec_key()
    cert = certificate(key, "firmware signing")
    digest = signatures.file_digest(io.BytesIO(IMAGE))
    metadata = {"sha256": digest.hex(), "signing_certificate": signatures.certificate_pem(cert),
                "signature": signatures.encode(signatures.sign_digest(pem(key), cert, digest)),
                "signature_algorithm": signatures.algorithm(cert)}
    await repository.add_firmware(db, name, io.BytesIO(IMAGE), metadata)
    return metadata


def update(location: str, **extra: Any) -> dict[str, Any]:
    return {"location": location, "retrieveDate": iso(utcnow()), **extra}


def signed_update(location: str, metadata: dict[str, Any], request_id: int = 1,
                  **firmware: Any) -> dict[str, Any]:
    return {"requestId": request_id, "firmware": {
        "location": location, "retrieveDateTime": iso(utcnow()),
        "signingCertificate": metadata["signing_certificate"],
        "signature": metadata["signature"], **firmware}}


async def refused(feature: Feature, action: str, payload: dict[str, Any], message: str,
                  **fields: Any) -> None:
    with pytest.raises(CommandRefused) as caught:
        await feature.validate(action, payload, **fields)
    assert message in caught.value.description, caught.value.description


async def test_a_tokenless_url_is_given_a_download_token_of_its_command(
        feature: Feature) -> None:
    await repository.add_firmware(feature.db, "fw.bin", io.BytesIO(IMAGE))
    request = await feature.validate("UpdateFirmware", update(f"{BASE}/firmware/fw.bin",
                                                              retries=2, retryInterval=60))
    location = rules.parse_firmware_location(request.payload["location"], BASE)
    assert location is not None and location.name == "fw.bin" and location.token
    token = await download_tokens.get(feature.db, location.token)
    assert token is not None and (token["command_id"], token["station"]) == ("c1", "CP1")
    assert token["expires_at"] > utcnow() + timedelta(hours=23, seconds=119)
    # The same URL again: the command it belongs to may, another may not.
    await feature.validate("UpdateFirmware", request.payload)
    await refused(feature, "UpdateFirmware", request.payload, "belongs to another command",
                  command_id="c2")
    foreign = update("ftp://vendor.example/fw.bin")
    assert (await feature.validate("UpdateFirmware", foreign, "c3")).payload == foreign


async def test_download_urls_that_cannot_be_sent(feature: Feature) -> None:
    await repository.add_firmware(feature.db, "fw.bin", io.BytesIO(IMAGE))
    await refused(feature, "UpdateFirmware", update(f"{BASE}/firmware/none.bin"),
                  "no firmware 'none.bin'")
    forged = rules.firmware_url(BASE, "f" * 32, "fw.bin")
    await refused(feature, "UpdateFirmware", update(forged), "not a download URL this file")
    expired = await download_tokens.issue(feature.db, "fw.bin", station=None, command_id=None,
                                          expires_at=utcnow() - timedelta(seconds=1))
    await refused(feature, "UpdateFirmware",
                  update(rules.firmware_url(BASE, expired, "fw.bin")), "download URL expired")
    short = await download_tokens.issue(feature.db, "fw.bin", station=None, command_id=None,
                                        expires_at=utcnow() + timedelta(hours=1))
    await refused(feature, "UpdateFirmware", {
        "location": rules.firmware_url(BASE, short, "fw.bin"),
        "retrieveDate": iso(utcnow() + timedelta(days=2))}, "expires before the retrieve date")


async def test_signed_updates_carry_the_images_own_signature(feature: Feature) -> None:
    metadata = await signed_image(feature.db)
    request = await feature.validate("SignedUpdateFirmware",
                                     signed_update(f"{BASE}/firmware/cp.bin", metadata))
    location = rules.parse_firmware_location(request.payload["firmware"]["location"], BASE)
    assert location is not None and location.token is not None
    other = signatures.encode(b"\x01" * 64)
    await refused(feature, "SignedUpdateFirmware",
                  signed_update(f"{BASE}/firmware/cp.bin", {**metadata, "signature": other}, 2),
                  "must be the ones stored with 'cp.bin'", command_id="c2")
    await repository.add_firmware(feature.db, "plain.bin", io.BytesIO(IMAGE))
    with pytest.raises(CommandRefused) as caught:
        await feature.validate("SignedUpdateFirmware",
                               signed_update(f"{BASE}/firmware/plain.bin", metadata, 3), "c3")
    assert caught.value.code == "UnsignedFirmware"


async def test_request_ids_belong_to_one_command_per_station(feature: Feature) -> None:
    metadata = await signed_image(feature.db)
    payload = signed_update("https://vendor.example/cp.bin", metadata, request_id=42)
    await feature.validate("SignedUpdateFirmware", payload, "c1")
    await feature.validate("SignedUpdateFirmware", payload, "c1")  # the same command again
    await refused(feature, "SignedUpdateFirmware", payload, "requestId 42 belongs to another",
                  command_id="c2")
    await feature.validate("SignedUpdateFirmware", payload, "c3", station="CP2")
    log = {"logType": "SecurityLog", "requestId": 42,
           "log": {"remoteLocation": "ftp://logs.example/"}}
    await feature.validate("GetLog", log, "c4")  # GetLog's requestIds are its own


async def test_get_log_registers_a_log_upload_token(feature: Feature) -> None:
    token = rules.new_token()
    location = rules.diagnostics_location(BASE, "CP1", token)
    payload = {"logType": "DiagnosticsLog", "requestId": 9, "log": {"remoteLocation": location}}
    await feature.validate("GetLog", payload)
    document = await upload_tokens.get(feature.db, token)
    assert document is not None and document["kind"] == upload_tokens.LOG
    assert document["details"] == {"log_type": "DiagnosticsLog", "request_id": 9}
    await refused(feature, "GetLog", {**payload, "requestId": 10}, "belongs to another command",
                  command_id="c2")
    await refused(feature, "GetLog", {**payload, "requestId": 11}, "upload location of 'CP1'",
                  command_id="c3", station="CP2")


def command(action: str, payload: dict[str, Any], status: str, response: dict[str, Any],
            command_id: str = "c1") -> dict[str, Any]:
    now = utcnow()
    return {"_id": command_id, "station": "CP1", "action": action, "payload": payload,
            "status": status, "response": response, "created_at": now, "updated_at": now,
            "history": [{"status": "sent", "at": now}]}


async def test_answers_open_jobs_and_failures_are_security_events(feature: Feature) -> None:
    metadata = await signed_image(feature.db)
    payload = signed_update("https://vendor.example/cp.bin", metadata, request_id=5,
                            installDateTime=iso(utcnow() + timedelta(hours=1)))
    await feature.after(command("SignedUpdateFirmware", payload, "accepted",
                                {"status": "AcceptedCanceled"}))
    job = await feature.db[repository.SIGNED_FIRMWARE_JOBS].find_one({"_id": "c1"})
    assert (job["status"], job["request_id"], job["answer"]) == ("Accepted", 5,
                                                                 "AcceptedCanceled")
    await feature.after(command("SignedUpdateFirmware", {**payload, "requestId": 6},
                                "rejected", {"status": "InvalidCertificate"}, "c2"))
    assert await feature.db[repository.SIGNED_FIRMWARE_JOBS].find_one({"_id": "c2"}) is None
    for attempt in range(2):  # a redelivered notification is one event
        dispatched = await feature.hooks.router.dispatch(ChargerCall(
            station="CP1", session="s1", unique_id="u1",
            action="SignedFirmwareStatusNotification",
            payload={"status": "InvalidSignature", "requestId": 5}, received_at=utcnow()))
        assert dispatched.reply is not None and dispatched.reply.payload == {}, attempt
    job = await feature.db[repository.SIGNED_FIRMWARE_JOBS].find_one({"_id": "c1"})
    assert job["status"] == "InvalidSignature"
    events = await security_events.list_rows(feature.db, "CP1")
    assert sorted((e["type"], e["source"]) for e in events) == [
        ("InvalidFirmwareSignature", "csms"), ("InvalidFirmwareSigningCertificate", "csms")]


async def test_log_status_without_a_request_id_is_answered(feature: Feature) -> None:
    dispatched = await feature.hooks.router.dispatch(ChargerCall(
        station="CP1", session="s1", unique_id="u2", action="LogStatusNotification",
        payload={"status": "Idle"}, received_at=utcnow()))
    assert dispatched.reply is not None and dispatched.reply.payload == {}
    seen = await feature.db[repository.LOG_STATUS].find_one({"_id": "CP1"})
    assert seen["status"] == "Idle"
