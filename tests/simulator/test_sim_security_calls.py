"""Answers to the security extension's GetLog and SignedUpdateFirmware, fed as frames into a
Charger (no sockets; the driver's transfers played by hand), and the security events a charger
logs and sends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sim_helpers import Bench, booted, result_status, sent_calls
from sim_pki import Issued, issue, make_ca, sign

from simulator.frames import CALL, CALLRESULT, check
from simulator.security import DOWNLOAD, UPLOAD, TransferOutcome

MF_ROOT = "ManufacturerRootCertificate"


# --- GetLog (N01) ------------------------------------------------------------------------------


def _get_log(request_id: int, location: str, log_type: str = "SecurityLog") -> dict[str, Any]:
    return {"logType": log_type, "requestId": request_id, "log": {"remoteLocation": location}}


def test_get_log_uploads_and_reports_with_its_request_id() -> None:
    bench = booted(authorization_key="a-secret-password", security_profile=2)
    charger = bench.charger
    assert result_status(bench.csms("GetLog", _get_log(7, "ftp://files/logs/"))) == "Rejected"
    frames = bench.csms("GetLog", _get_log(7, "http://files/logs/"), "c2")
    assert frames[0][2] == {"status": "Accepted", "filename": "CP-1-SecurityLog-7.log"}
    check(CALLRESULT, "GetLog", frames[0][2])
    (transfer,) = charger.take_transfers()
    assert (transfer.kind, transfer.url, transfer.request_id) == (
        UPLOAD,
        "http://files/logs/CP-1-SecurityLog-7.log",
        7,
    )
    assert b"StartupOfTheDevice" in transfer.body  # the security log, as recorded at boot
    assert charger.take_transfers() == []
    started = [json.loads(f) for f in charger.transfer_started(transfer, bench.tick())]
    assert sent_calls(started) == [
        ("LogStatusNotification", {"status": "Uploading", "requestId": 7})
    ]
    # A new GetLog while uploading cancels it (N01.FR.11): the old upload's end is ignored.
    bench.reply(started[0])
    frames = bench.csms("GetLog", _get_log(8, "https://files/put-here", "DiagnosticsLog"), "c3")
    assert result_status(frames) == "AcceptedCanceled"
    (second,) = charger.take_transfers()
    assert second.url == "https://files/put-here"  # not a directory: as it is
    assert b"a-secret-password" not in second.body and b"HeartbeatInterval" in second.body
    assert charger.transfer_done(transfer, TransferOutcome(True), bench.tick()) == []
    bench.drain([json.loads(f) for f in charger.transfer_started(second, bench.tick())])
    done = charger.transfer_done(second, TransferOutcome(False, error="HTTP 500"), bench.tick())
    assert sent_calls([json.loads(f) for f in done]) == [
        ("LogStatusNotification", {"status": "UploadFailure", "requestId": 8})
    ]
    assert bench.stats.transfers == {("upload", "ok"): 1, ("upload", "HTTP 500"): 1}


def test_extended_trigger_reports_the_upload_going_on() -> None:
    bench = booted()
    bench.csms("GetLog", _get_log(3, "http://files/"))
    trigger = {"requestedMessage": "LogStatusNotification"}
    frames = bench.csms("ExtendedTriggerMessage", trigger, "c2")
    assert sent_calls(frames) == [
        ("LogStatusNotification", {"status": "Uploading", "requestId": 3})
    ]


# --- SignedUpdateFirmware (L01) ----------------------------------------------------------------


IMAGE = b"firmware image \x00\x01\x02" * 100


def _firmware(
    signer: Issued,
    signature: str,
    *,
    request_id: int = 5,
    when: str | None = None,
    location: str = "https://files/fw.bin",
) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "firmware": {
            "location": location,
            "retrieveDateTime": when or "2020-01-01T00:00:00Z",
            "signingCertificate": signer.cert_pem,
            "signature": signature,
        },
    }


def _download(bench: Bench, data: bytes | None) -> list[tuple[str, dict[str, Any]]]:
    """Run the firmware download the charger asked for; the CALLs that follow."""
    charger = bench.charger
    (transfer,) = charger.take_transfers()
    assert transfer.kind == DOWNLOAD
    calls = bench.drain([json.loads(f) for f in charger.transfer_started(transfer, bench.tick())])
    outcome = TransferOutcome(data is not None, data=data or b"", error="" if data else "HTTP 404")
    frames = [json.loads(f) for f in charger.transfer_done(transfer, outcome, bench.tick())]
    calls += bench.drain(frames)
    return [(c[2], c[3]) for c in calls]


@pytest.mark.parametrize("rsa_key", [False, True], ids=["ecdsa", "rsa-pss"])
def test_signed_firmware_is_downloaded_verified_and_installed(rsa_key: bool) -> None:
    maker = make_ca("Maker", rsa_key=rsa_key)  # signs the image with its own key here
    bench = booted()
    frames = bench.csms("SignedUpdateFirmware", _firmware(maker, sign(maker.key, IMAGE)))
    assert result_status(frames) == "Accepted"
    calls = _download(bench, IMAGE)
    statuses = [(a, p.get("status"), p.get("requestId")) for a, p in calls]
    assert statuses == [
        ("SignedFirmwareStatusNotification", "Downloading", 5),
        ("SignedFirmwareStatusNotification", "Downloaded", 5),
        ("SignedFirmwareStatusNotification", "SignatureVerified", 5),
        ("SignedFirmwareStatusNotification", "Installing", 5),
        ("SignedFirmwareStatusNotification", "Installed", 5),
        ("SecurityEventNotification", None, None),
    ]
    assert calls[-1][1]["type"] == "FirmwareUpdated"
    trigger = {"requestedMessage": "FirmwareStatusNotification"}
    frames = bench.csms("ExtendedTriggerMessage", trigger, "c2")
    assert sent_calls(frames) == [("SignedFirmwareStatusNotification", {"status": "Idle"})]


def test_a_bad_signature_a_failed_download_and_a_later_retrieve_date() -> None:
    maker = make_ca("Maker")
    bench = booted()
    bench.csms("SignedUpdateFirmware", _firmware(maker, sign(maker.key, b"another image")))
    calls = _download(bench, IMAGE)
    assert [p.get("status") or p["type"] for _, p in calls] == [
        "Downloading",
        "Downloaded",
        "InvalidSignature",
        "InvalidFirmwareSignature",  # L01.FR.03
    ]
    bench.csms("SignedUpdateFirmware", _firmware(maker, "bm90IGEgc2lnbmF0dXJl", request_id=6), "c2")
    assert [p["status"] for _, p in _download(bench, None)] == ["Downloading", "DownloadFailed"]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    frames = bench.csms(
        "SignedUpdateFirmware", _firmware(maker, "x", request_id=7, when=later), "c3"
    )
    assert sent_calls(frames) == [
        ("SignedFirmwareStatusNotification", {"status": "DownloadScheduled", "requestId": 7})
    ]
    bench.drain(frames[1:])
    (transfer,) = bench.charger.take_transfers()
    assert 3500 < transfer.delay_s <= 3600
    # Another update while this one waits cancels it (L01.FR.26).
    again = bench.csms("SignedUpdateFirmware", _firmware(maker, "x", request_id=8), "c4")
    assert result_status(again) == "AcceptedCanceled"
    ftp = _firmware(maker, "x", request_id=9, location="ftp://files/fw.bin")
    assert result_status(bench.csms("SignedUpdateFirmware", ftp, "c5")) == "Rejected"


def test_the_signing_certificate_is_checked_before_accepting() -> None:
    maker, other = make_ca("Maker"), make_ca("Someone else")
    bench = booted()
    garbage = _firmware(maker, "x")
    garbage["firmware"]["signingCertificate"] = "not a certificate"
    frames = bench.csms("SignedUpdateFirmware", garbage)
    assert result_status(frames) == "InvalidCertificate"
    assert sent_calls(frames)[0][1]["type"] == "InvalidFirmwareSigningCertificate"  # L01.FR.02
    bench.drain(frames[1:])
    install = {"certificateType": MF_ROOT, "certificate": maker.cert_pem}
    assert result_status(bench.csms("InstallCertificate", install, "c2")) == "Accepted"
    signer = issue(maker, "Maker firmware signing")
    ok = bench.csms("SignedUpdateFirmware", _firmware(signer, sign(signer.key, IMAGE)), "c3")
    assert result_status(ok) == "Accepted"
    assert [p.get("status") for _, p in _download(bench, IMAGE)][-2] == "Installed"
    frames = bench.csms("SignedUpdateFirmware", _firmware(other, "x", request_id=6), "c4")
    assert result_status(frames) == "InvalidCertificate"  # not issued by the installed root


# --- security events ----------------------------------------------------------------------------


def test_boot_and_reset_events_are_sent_with_a_security_profile_only() -> None:
    plain = booted()
    assert all(c[2] != "SecurityEventNotification" for c in plain.sent)
    bench = Bench(security_profile=2, authorization_key="a-secret-password")
    after_boot = bench.boot()
    assert [(c[2], c[3].get("type")) for c in after_boot][-1] == (
        "SecurityEventNotification",
        "StartupOfTheDevice",
    )
    result, event = bench.csms("Reset", {"type": "Soft"})
    assert result[2] == {"status": "Accepted"} and event[3]["type"] == "ResetOrReboot"
    assert not bench.charger.wants_close  # it is sent before the reboot
    assert bench.reply(event) == [] and bench.charger.wants_close
    bench.charger.disconnected(bench.tick())
    types = [c[3]["type"] for c in bench.boot() if c[2] == "SecurityEventNotification"]
    assert types == ["StartupOfTheDevice"]


def test_events_wait_offline_once_per_type() -> None:
    bench = Bench(security_profile=2, authorization_key="a-secret-password")
    charger = bench.charger
    for _ in range(3):  # three failed connects, say
        charger.security_event("InvalidCentralSystemCertificate", "TLS: ...")
    charger.security_event("FailedToAuthenticateAtCentralSystem", "HTTP 401")  # logged only
    assert len(charger.security.log.entries) == 4
    sent = [c[3]["type"] for c in bench.boot() if c[2] == "SecurityEventNotification"]
    assert sent == ["InvalidCentralSystemCertificate", "StartupOfTheDevice"]
    for frame in bench.sent:
        if frame[0] == CALL:
            check(CALL, frame[2], frame[3])
