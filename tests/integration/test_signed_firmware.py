"""Secure firmware update end to end (Security Whitepaper L01-L03): signed images stored,
SignedUpdateFirmware sent, the image downloaded through its token and its signature
verified with the certificate the charger was sent, signed-firmware jobs following the
charger's SignedFirmwareStatusNotifications, failures kept as security events.

Keys and certificates are generated here with ``cryptography``; the raw-frame charger
verifies the signature as a charger does (RSA-PSS or ECDSA with SHA-256 over the image).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from commands.files import repository, rules
from services import security_events
from tests.charger import Charger
from tests.helpers import (
    PrivateKey,
    add_station,
    certificate,
    ec_key,
    new_id,
    pem,
    refused_before_the_charger,
    rsa_key,
)
from tests.processes import Stack, finish

pytestmark = pytest.mark.integration


def write_signing_files(tmp_path: Path, key: PrivateKey) -> tuple[Path, Path, x509.Certificate]:
    cert = certificate(key, "Firmware Signing (tests)")
    cert_file, key_file = tmp_path / f"{uuid.uuid4().hex}.pem", tmp_path / "signing.key"
    cert_file.write_bytes(pem(cert))
    key_file.write_bytes(pem(key))
    return cert_file, key_file, cert


async def add_signed(stack: Stack, base: str, tmp_path: Path, *signing: str,
                     size: int = 300_000) -> tuple[str, bytes]:
    name, image = f"fw-{uuid.uuid4().hex[:8]}.bin", os.urandom(size)
    (tmp_path / name).write_bytes(image)
    code, out, err = await stack.cli("firmware", "add", str(tmp_path / name), *signing,
                                     files_public_url=base, timeout=30)
    assert code == 0, err
    assert f"firmware {name} added ({size} bytes" in out and "signed" in out
    return name, image


def verify(cert_pem: str, image: bytes, signature: str) -> None:
    """What a charger does with the certificate and signature (L01.FR.04, L01.FR.12)."""
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    raw = base64.b64decode(signature, validate=True)
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(raw, image, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
                   hashes.SHA256())
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(raw, image, ec.ECDSA(hashes.SHA256()))


async def download(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def signed_update(stack: Stack, base: str, charger: Charger, station: str, name: str,
                        *args: str) -> tuple[asyncio.subprocess.Process, list[Any]]:
    process = await stack.start_cli("firmware", "update", station, name, "--signed", *args,
                                    files_public_url=base)
    frame = await charger.next_csms_call(timeout=20)
    assert frame[2] == "SignedUpdateFirmware"
    return process, frame


async def job(stack: Stack, command_id: str) -> dict[str, Any]:
    found = await stack.db()[repository.SIGNED_FIRMWARE_JOBS].find_one({"_id": command_id})
    assert found is not None
    return found


async def test_a_signed_update_is_downloaded_verified_and_followed(
        stack: Stack, files_base: str, tmp_path: Path) -> None:
    station = new_id("SFW")
    await add_station(stack, station)
    cert_file, key_file, cert = write_signing_files(tmp_path, rsa_key())
    name, image = await add_signed(stack, files_base, tmp_path, "--signing-certificate",
                                   str(cert_file), "--signing-key", str(key_file))
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process, frame = await signed_update(
            stack, files_base, charger, station, name, "--retrieve-date",
            "2026-11-23T22:00:00Z", "--install-date", "2026-11-24T03:00:00Z", "--retries", "2",
            "--retry-interval", "60")
        request_id, firmware = frame[3]["requestId"], frame[3]["firmware"]
        assert isinstance(request_id, int) and frame[3]["retries"] == 2
        assert firmware["retrieveDateTime"] == "2026-11-23T22:00:00.000Z"
        assert firmware["installDateTime"] == "2026-11-24T03:00:00.000Z"
        assert firmware["signingCertificate"] == pem(cert).decode()
        location = rules.parse_firmware_location(firmware["location"], files_base)
        assert location is not None and location.name == name and location.token
        # The charger downloads through the token and verifies the signature (L01.FR.04).
        assert await charger.result("SignedFirmwareStatusNotification",
                                    {"status": "Downloading", "requestId": request_id}) == {}
        status, downloaded = await download(firmware["location"])
        assert (status, downloaded) == (200, image)
        verify(firmware["signingCertificate"], downloaded, firmware["signature"])
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        printed = json.loads(out)
        assert (printed["requestId"], printed["status"]) == (request_id, "Accepted")
        for status in ("Downloaded", "SignatureVerified", "InstallScheduled", "InstallRebooting",
                       "Installing", "Installed"):
            await charger.result("SignedFirmwareStatusNotification",
                                 {"status": status, "requestId": request_id})
        await charger.result("SignedFirmwareStatusNotification",  # late
                             {"status": "Downloading", "requestId": request_id})
    found = await job(stack, printed["commandId"])
    assert (found["status"], found["request_id"], found["firmware"]) == (
        "Installed", request_id, name)
    assert found["install_date"].isoformat().startswith("2026-11-24T03:00:00")
    code, out, _ = await stack.cli("firmware", "jobs", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert (row["action"], row["requestId"], row["status"]) == (
        "SignedUpdateFirmware", request_id, "Installed")
    assert row["history"] == ["Accepted", "Downloading", "Downloaded", "SignatureVerified",
                              "InstallScheduled", "InstallRebooting", "Installing", "Installed"]
    assert await security_events.list_rows(stack.db(), station) == []


async def test_an_invalid_signature_is_final_and_a_security_event(
        stack: Stack, files_base: str, tmp_path: Path) -> None:
    station = new_id("SFW")
    await add_station(stack, station)
    key = ec_key()
    cert_file, _, _ = write_signing_files(tmp_path, key)
    image = os.urandom(50_000)
    (tmp_path / "image.bin").write_bytes(image)
    signature_file = tmp_path / "image.sig"  # the manufacturer's raw DER signature
    signature_file.write_bytes(key.sign(image, ec.ECDSA(hashes.SHA256())))
    name = f"fw-{uuid.uuid4().hex[:8]}.bin"
    code, out, err = await stack.cli("firmware", "add", str(tmp_path / "image.bin"), "--name",
                                     name, "--signing-certificate", str(cert_file),
                                     "--signature-file", str(signature_file),
                                     files_public_url=files_base, timeout=30)
    assert code == 0 and "signed ECDSA-SHA256" in out, err
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process, frame = await signed_update(stack, files_base, charger, station, name)
        request_id, firmware = frame[3]["requestId"], frame[3]["firmware"]
        verify(firmware["signingCertificate"], (await download(firmware["location"]))[1],
               firmware["signature"])
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        for status in ("Downloading", "Downloaded", "InvalidSignature", "Installing"):
            await charger.result("SignedFirmwareStatusNotification",
                                 {"status": status, "requestId": request_id})
    assert (await job(stack, json.loads(out)["commandId"]))["status"] == "InvalidSignature"
    [event] = await security_events.list_rows(stack.db(), station)
    assert (event["type"], event["source"]) == ("InvalidFirmwareSignature", "csms")
    assert str(request_id) in event["techInfo"]


async def test_an_invalid_certificate_answer_starts_no_job(stack: Stack, files_base: str,
                                                           tmp_path: Path) -> None:
    station = new_id("SFW")
    await add_station(stack, station)
    cert_file, key_file, _ = write_signing_files(tmp_path, ec_key())
    name, _ = await add_signed(stack, files_base, tmp_path, "--signing-certificate",
                               str(cert_file), "--signing-key", str(key_file), size=1000)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process, frame = await signed_update(stack, files_base, charger, station, name)
        await charger.answer([3, frame[1], {"status": "InvalidCertificate"}])
        code, out, err = await finish(process, 30)
    assert (code, out) == (1, "") and "rejected: InvalidCertificate" in err
    assert await stack.db()[repository.SIGNED_FIRMWARE_JOBS].count_documents(
        {"station": station}) == 0
    [event] = await security_events.list_rows(stack.db(), station)
    assert event["type"] == "InvalidFirmwareSigningCertificate"


async def test_signatures_that_do_not_verify_are_not_stored(stack: Stack, files_base: str,
                                                            tmp_path: Path) -> None:
    cert_file, key_file, _ = write_signing_files(tmp_path, rsa_key())
    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(1000))
    (tmp_path / "wrong.sig").write_bytes(base64.b64encode(os.urandom(256)))
    for extra, message in (
            (["--signing-certificate", str(cert_file), "--signature-file",
              str(tmp_path / "wrong.sig")], "does not verify"),
            (["--signing-key", str(key_file)], "need --signing-certificate"),
            (["--signing-certificate", str(cert_file)], "needs --signature-file or"),
            (["--signing-certificate", str(key_file), "--signing-key", str(key_file)],
             "not a PEM X.509 certificate")):
        code, _, err = await stack.cli("firmware", "add", str(image), "--name",
                                       f"x-{uuid.uuid4().hex[:6]}.bin", *extra,
                                       files_public_url=files_base, timeout=30)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


async def test_an_unsigned_image_is_not_sent_signed(stack: Stack, files_base: str,
                                                    tmp_path: Path) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}.bin"
    (tmp_path / name).write_bytes(b"unsigned")
    code, _, err = await stack.cli("firmware", "add", str(tmp_path / name),
                                   files_public_url=files_base, timeout=30)
    assert code == 0, err
    await refused_before_the_charger(stack, "SFWBAD", ["firmware", "update", "{station}", name,
                                                       "--signed"], 1, "has no signature",
                                     files_public_url=files_base)
    await refused_before_the_charger(stack, "SFWBAD", [
        "command", "{station}", "SignedUpdateFirmware", json.dumps({
            "requestId": 1, "firmware": {
                "location": f"{files_base}/firmware/{name}",
                "retrieveDateTime": "2026-11-23T00:00:00Z",
                "signingCertificate": pem(certificate(ec_key(), "s")).decode(),
                "signature": base64.b64encode(b"sig").decode()}})],
        1, "invalid command: UnsignedFirmware", files_public_url=files_base)
