"""The security extension end to end: a fleet against the test CSMS (over TLS) and a tiny
local HTTP(S) file server, with certificates made in the test (:mod:`sim_pki`).

GetLog uploads a real file (HTTP PUT), SignedUpdateFirmware downloads and verifies a real
image (HTTPS GET), a CertificateSigned certificate is the one the charger connects with
after a reset (A02), and an installed CentralSystemRootCertificate is trusted (M05).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ocpp.v16 import call
from sim_csms import Csms, CsmsChargePoint, FileServer
from sim_pki import Issued, issue, make_ca, server_context, sign, sign_csr

from simulator import transfers
from simulator.fleet import Fleet
from simulator.plan import FleetPlan
from simulator.security import DOWNLOAD, UPLOAD, Transfer, TransferOutcome

pytestmark = pytest.mark.timeout(60)

IMAGE = b"\x7fELF firmware for the simulator " * 512


@pytest.fixture
def ca() -> Issued:
    return make_ca("Sim Test CA")


def _ca_file(folder: Path, ca: Issued) -> str:
    path = folder / "ca.pem"
    path.write_text(ca.cert_pem)
    return str(path)


def _plan(url: str, ca_file: str, **fields: Any) -> FleetPlan:
    base = FleetPlan(
        url=url,
        chargers=1,
        profile="idle",
        duration_s=30,
        ramp_s=0,
        id_prefix="EXT",
        validate="all",
        ca_file=ca_file,
        password="a-password-of-16+",
        connect_timeout_s=5,
    )
    return replace(base, **fields)


async def _run_script(csms: Csms, plan: FleetPlan) -> Fleet:
    """Run a fleet until the CSMS's script is done; fail with the script's error."""
    fleet = Fleet(plan)
    run = asyncio.ensure_future(fleet.run())
    try:
        await asyncio.wait_for(csms.script_done.wait(), timeout=30)
    finally:
        fleet.stop()
        await run
    assert csms.script_error is None, repr(csms.script_error)
    return fleet


def _received(csms: Csms, action: str) -> list[dict[str, Any]]:
    return [p for charger in csms.security.values() for a, p in charger if a == action]


async def _until(cp: CsmsChargePoint, action: str, done: Callable[[], bool]) -> None:
    """Wait for ``action`` from the charger until ``done()`` (each wait bounded by 5 s)."""
    while not done():
        await cp.wait_for(action)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_get_log_puts_the_file_and_reports_uploaded(
    tmp_path: Path, ca: Issued, scheme: str
) -> None:
    tls = server_context(issue(ca, "localhost", server=True), tmp_path)
    files = FileServer(tls=tls if scheme == "https" else None)

    async def get_log(cp: CsmsChargePoint) -> None:
        result = await cp.call(
            call.GetLog(
                log={"remoteLocation": f"{files.url}/logs/"}, log_type="SecurityLog", request_id=42
            )
        )
        assert (result.status, result.filename) == ("Accepted", "EXT1-SecurityLog-42.log")
        statuses = lambda: [p["status"] for p in _received(cp.csms, "LogStatusNotification")]  # noqa: E731
        await _until(cp, "LogStatusNotification", lambda: "Uploaded" in statuses())

    async with files, Csms(tls=tls, script=get_log) as csms:
        await _run_script(csms, _plan(csms.url, _ca_file(tmp_path, ca)))
    assert _received(csms, "LogStatusNotification") == [
        {"status": "Uploading", "request_id": 42},
        {"status": "Uploaded", "request_id": 42},
    ]
    assert files.requests == [("PUT", "/logs/EXT1-SecurityLog-42.log")]
    body = files.uploads["/logs/EXT1-SecurityLog-42.log"].decode()
    assert "StartupOfTheDevice" in body and files.upload_types[
        "/logs/EXT1-SecurityLog-42.log"
    ].startswith("text/plain")


async def test_a_refused_upload_is_reported_as_upload_failure(tmp_path: Path, ca: Issued) -> None:
    tls = server_context(issue(ca, "localhost", server=True), tmp_path)
    files = FileServer(put_status=403)

    async def get_log(cp: CsmsChargePoint) -> None:
        await cp.call(
            call.GetLog(
                log={"remoteLocation": f"{files.url}/x.log"},
                log_type="DiagnosticsLog",
                request_id=1,
            )
        )
        statuses = lambda: [p["status"] for p in _received(cp.csms, "LogStatusNotification")]  # noqa: E731
        await _until(cp, "LogStatusNotification", lambda: "UploadFailure" in statuses())

    async with files, Csms(tls=tls, script=get_log) as csms:
        fleet = await _run_script(csms, _plan(csms.url, _ca_file(tmp_path, ca)))
    assert files.requests == [("PUT", "/x.log")]
    assert fleet.report()["transfers"] == {"upload": {"HTTP 403": 1}}


def _firmware_statuses(csms: Csms) -> list[str]:
    return [p["status"] for p in _received(csms, "SignedFirmwareStatusNotification")]


@pytest.mark.parametrize("good", [True, False], ids=["verified", "bad-signature"])
async def test_signed_firmware_is_downloaded_over_https_and_verified(
    tmp_path: Path, ca: Issued, good: bool
) -> None:
    tls = server_context(issue(ca, "localhost", server=True), tmp_path)
    files = FileServer(tls=tls)
    files.content["/fw/image.bin"] = IMAGE
    maker = make_ca("Maker")
    signer = issue(maker, "Maker firmware signing")
    signature = sign(signer.key, IMAGE if good else IMAGE + b"tampered")
    final = "Installed" if good else "InvalidSignature"

    async def update(cp: CsmsChargePoint) -> None:
        installed = await cp.call(
            call.InstallCertificate(
                certificate_type="ManufacturerRootCertificate", certificate=maker.cert_pem
            )
        )
        assert installed.status == "Accepted"
        result = await cp.call(
            call.SignedUpdateFirmware(
                request_id=77,
                firmware={
                    "location": f"{files.url}/fw/image.bin",
                    "retrieveDateTime": "2020-01-01T00:00:00Z",
                    "signingCertificate": signer.cert_pem,
                    "signature": signature,
                },
            )
        )
        assert result.status == "Accepted"
        events = lambda: [p["type"] for p in _received(cp.csms, "SecurityEventNotification")]  # noqa: E731
        wanted = "FirmwareUpdated" if good else "InvalidFirmwareSignature"
        await _until(cp, "SecurityEventNotification", lambda: wanted in events())

    async with files, Csms(tls=tls, script=update) as csms:
        fleet = await _run_script(csms, _plan(csms.url, _ca_file(tmp_path, ca)))
    assert files.requests == [("GET", "/fw/image.bin")]
    expected = ["Downloading", "Downloaded"]
    expected += ["SignatureVerified", "Installing", "Installed"] if good else ["InvalidSignature"]
    assert _firmware_statuses(csms) == expected and expected[-1] == final
    assert {p["request_id"] for p in _received(csms, "SignedFirmwareStatusNotification")} == {77}
    assert fleet.report()["transfers"] == {"download": {"ok": 1}}


async def test_a_download_from_an_untrusted_server_fails(tmp_path: Path, ca: Issued) -> None:
    tls = server_context(issue(ca, "localhost", server=True), tmp_path)
    stranger = server_context(issue(make_ca("Stranger"), "localhost", server=True), tmp_path)
    files = FileServer(tls=stranger)
    files.content["/fw.bin"] = IMAGE
    maker = make_ca("Maker")

    async def update(cp: CsmsChargePoint) -> None:
        await cp.call(
            call.SignedUpdateFirmware(
                request_id=3,
                firmware={
                    "location": f"{files.url}/fw.bin",
                    "retrieveDateTime": "2020-01-01T00:00:00Z",
                    "signingCertificate": maker.cert_pem,
                    "signature": sign(maker.key, IMAGE),
                },
            )
        )
        await _until(
            cp,
            "SignedFirmwareStatusNotification",
            lambda: "DownloadFailed" in _firmware_statuses(cp.csms),
        )

    async with files, Csms(tls=tls, script=update) as csms:
        fleet = await _run_script(csms, _plan(csms.url, _ca_file(tmp_path, ca)))
    assert _firmware_statuses(csms) == ["Downloading", "DownloadFailed"]
    ((outcome, count),) = fleet.report()["transfers"]["download"].items()
    assert outcome.startswith("TLS: server certificate not verified") and count == 1


async def test_a_signed_certificate_is_used_for_the_next_connection(
    tmp_path: Path, ca: Issued
) -> None:
    """A02 with security profile 3: trigger, CSR, CertificateSigned, reset, new certificate."""
    folder = tmp_path / "chargers"
    folder.mkdir()
    issue(ca, "EXT1", organization="Sim CPO").write(folder, "EXT1")
    tls = server_context(issue(ca, "localhost", server=True), tmp_path, client_ca=ca)
    chains: list[str] = []

    async def renew(cp: CsmsChargePoint) -> None:
        csr_sent = asyncio.ensure_future(cp.wait_for("SignCertificate"))
        result = await cp.call(
            call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
        )
        assert result.status == "Accepted"
        await csr_sent
        ((_, request),) = [e for e in cp.csms.security[cp.id] if e[0] == "SignCertificate"]
        chains.append(sign_csr(ca, request["csr"]))
        signed = await cp.call(call.CertificateSigned(certificate_chain=chains[0]))
        assert signed.status == "Accepted"
        reconnected = asyncio.ensure_future(cp.wait_for("BootNotification"))
        assert (await cp.call(call.Reset(type="Soft"))).status == "Accepted"
        await reconnected

    async with Csms(tls=tls, script=renew) as csms:
        plan = _plan(
            csms.url,
            _ca_file(tmp_path, ca),
            password=None,
            cert_dir=str(folder),
            organization="Sim CPO",
        )
        await _run_script(csms, plan)
    first, second = csms.peer_certificates["EXT1"]
    original = x509.load_pem_x509_certificate((folder / "EXT1.pem").read_bytes())
    assert first == original.public_bytes(serialization.Encoding.DER)
    new = x509.load_pem_x509_certificates(chains[0].encode())[0]
    assert second == new.public_bytes(serialization.Encoding.DER)
    csr = x509.load_pem_x509_csr(_received(csms, "SignCertificate")[0]["csr"].encode())
    assert csr.subject.rfc4514_string() == "O=Sim CPO,CN=EXT1"
    assert csms.peer_names["EXT1"] == ["EXT1", "EXT1"]


async def test_an_installed_root_is_trusted_for_the_next_connection(
    tmp_path: Path, ca: Issued
) -> None:
    """M05: the CSMS installs a new root, moves to a certificate it issued, resets."""
    tls = server_context(issue(ca, "localhost", server=True), tmp_path)
    new_root = make_ca("New CSMS Root")

    async def rotate(cp: CsmsChargePoint) -> None:
        result = await cp.call(
            call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=new_root.cert_pem
            )
        )
        assert result.status == "Accepted"
        listed = await cp.call(
            call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
        )
        assert len(listed.certificate_hash_data) == 2  # the --ca-file root and the new one
        tls.load_cert_chain(*issue(new_root, "localhost", server=True).write(tmp_path, "new"))
        reconnected = asyncio.ensure_future(cp.wait_for("BootNotification"))
        assert (await cp.call(call.Reset(type="Hard"))).status == "Accepted"
        await reconnected

    async with Csms(tls=tls, script=rotate) as csms:
        fleet = await _run_script(csms, _plan(csms.url, _ca_file(tmp_path, ca)))
    assert csms.connections["EXT1"] == 2
    assert fleet.report()["connections"]["connect_failures"] == {}
    events = [p["type"] for p in _received(csms, "SecurityEventNotification")]
    assert events == ["StartupOfTheDevice", "ResetOrReboot", "StartupOfTheDevice"]


async def test_a_failed_transfer_is_retried_as_asked() -> None:
    async with FileServer(put_status=500) as files:
        transfer = Transfer(UPLOAD, f"{files.url}/log.txt", 1, body=b"x", retries=2)
        outcome = await transfers.run(transfer, None, timeout_s=5)
        missing = Transfer(DOWNLOAD, f"{files.url}/none.bin", 2)
        absent = await transfers.run(missing, None, timeout_s=5)
    assert outcome == TransferOutcome(False, error="HTTP 500")
    assert files.requests == [("PUT", "/log.txt")] * 3 + [("GET", "/none.bin")]
    assert absent == TransferOutcome(False, error="HTTP 404")
