"""Files without I/O: GridLink's upload locations and download URLs, token refusals, and the
checks UpdateFirmware, SignedUpdateFirmware, GetDiagnostics and GetLog requests must pass."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.files import rules
from commands.files.rules import (
    get_diagnostics_problem,
    get_log_problem,
    signed_update_firmware_problem,
    update_firmware_problem,
)
from services.ocpp16 import utcnow
from tests.helpers import certificate, ec_key, memory_settings, pem

TOKEN_A = "a" * 32
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_upload_locations_are_recognised_by_path() -> None:
    location = rules.diagnostics_location("https://gl.example/files/", "CP 1/a", TOKEN_A)
    assert location == f"https://gl.example/files/diagnostics/CP%201%2Fa/{TOKEN_A}"
    assert rules.parse_upload_location(location) == rules.UploadLocation("CP 1/a", TOKEN_A)
    assert rules.parse_upload_location(f"ftp://other/diagnostics/CP1/{TOKEN_A}/") is not None
    assert rules.parse_upload_location("ftp://other/diagnostics/CP1/logs") is None
    assert rules.parse_upload_location("http://other/upload") is None


def test_firmware_locations_of_this_server() -> None:
    base = "http://gl:9180"
    url = rules.firmware_url(base, TOKEN_A, "a b.bin")
    assert url == f"{base}/firmware/{TOKEN_A}/a%20b.bin"
    assert rules.parse_firmware_location(url, base) == rules.FirmwareLocation("a b.bin", TOKEN_A)
    # Another host name of GridLink: the path and the token's form decide.
    assert rules.parse_firmware_location(f"https://plain.gl/firmware/{TOKEN_A}/a.bin", base) \
        == rules.FirmwareLocation("a.bin", TOKEN_A)
    assert rules.parse_firmware_location(f"{base}/firmware/a.bin", base) == \
        rules.FirmwareLocation("a.bin", None)  # tokenless: only under GridLink's own base
    assert rules.parse_firmware_location("http://elsewhere/firmware/a.bin", base) is None
    assert rules.parse_firmware_location("http://elsewhere/firmware/v2/a.bin", base) is None


def test_the_default_public_url_follows_tls() -> None:
    assert rules.public_base_url(memory_settings(files_port=9180)) == "http://127.0.0.1:9180"
    assert rules.public_base_url(memory_settings(
        files_port=9180, tls_cert_file="c.pem", tls_key_file="k.pem")) == "https://127.0.0.1:9180"
    assert rules.public_base_url(memory_settings(files_public_url="https://f.example/")) == \
        "https://f.example"


def test_upload_refusals() -> None:
    token = {"station": "CP1", "expires_at": NOW + timedelta(hours=1)}
    assert rules.upload_refusal(token, "CP1", NOW) is None
    assert rules.upload_refusal(None, "CP1", NOW)[0] == 404  # type: ignore[index]
    assert rules.upload_refusal(token, "CP2", NOW)[0] == 404  # type: ignore[index]
    assert rules.upload_refusal({**token, "expires_at": NOW}, "CP1", NOW)[:2] == (403, "expired")
    assert rules.upload_refusal({**token, "used_at": NOW}, "CP1", NOW)[:2] == (403, "used")
    busy = {**token, "reserved_until": NOW + timedelta(seconds=1)}
    assert rules.upload_refusal(busy, "CP1", NOW)[:2] == (409, "in_use")  # type: ignore[index]
    lapsed = {**token, "reserved_until": NOW}  # its holder died: the lease is over
    assert rules.upload_refusal(lapsed, "CP1", NOW) is None


def test_download_refusals_say_nothing_of_other_images() -> None:
    token = {"firmware": "a.bin", "expires_at": NOW + timedelta(hours=1)}
    assert rules.download_refusal(token, "a.bin", NOW) is None
    assert rules.download_refusal(None, "a.bin", NOW) == rules.download_refusal(
        token, "b.bin", NOW)
    expired = rules.download_refusal({**token, "expires_at": NOW}, "a.bin", NOW)
    assert expired is not None and expired[:2] == (403, "expired")


def test_download_urls_expire_after_the_retrieve_date_and_the_retries() -> None:
    window = timedelta(hours=24)
    later = NOW + timedelta(days=3)
    assert rules.download_expiry({}, later, NOW, window) == later + window
    assert rules.download_expiry({}, NOW - timedelta(days=1), NOW, window) == NOW + window
    assert rules.download_expiry({"retries": 3, "retryInterval": 600}, later, NOW, window) == \
        later + window + timedelta(seconds=1800)
    assert rules.download_expiry({"retries": 10**6, "retryInterval": 10**6}, NOW, NOW,
                                 window) == NOW + window + rules.MAX_RETRY_WINDOW


@pytest.mark.parametrize(("payload", "problem"), [
    ({"location": "https://x/fw.bin", "retrieveDate": "2026-01-01T00:00:00Z"}, None),
    ({"location": "gopher://x/fw.bin", "retrieveDate": "2026-01-01T00:00:00Z"}, "scheme"),
    ({"location": "http:fw.bin", "retrieveDate": "2026-01-01T00:00:00Z"}, "no host"),
    ({"location": "ftp://x/fw", "retrieveDate": "2026-01-01T00:00:00Z", "retries": -1},
     "retries must not be negative"),
])
def test_update_firmware_checks(payload: dict[str, Any], problem: str | None) -> None:
    found = update_firmware_problem(payload)
    assert found == problem if problem is None else problem in (found or "")


@pytest.mark.parametrize(("payload", "problem"), [
    ({"location": f"http://gl/diagnostics/CP1/{TOKEN_A}"}, None),
    ({"location": f"http://gl/diagnostics/CP2/{TOKEN_A}"}, "upload location of 'CP2'"),
    ({"location": "ftp://x/", "startTime": "2026-01-02T00:00:00Z",
      "stopTime": "2026-01-01T00:00:00Z"}, "startTime is after stopTime"),
    ({"location": "ftp://x/", "retryInterval": -5}, "retryInterval must not be negative"),
])
def test_get_diagnostics_checks(payload: dict[str, Any], problem: str | None) -> None:
    found = get_diagnostics_problem(payload, "CP1")
    assert found == problem if problem is None else problem in (found or "")


def get_log(**log: Any) -> dict[str, Any]:
    retries = {k: log.pop(k) for k in ("retries", "retryInterval") if k in log}
    return {"logType": "SecurityLog", "requestId": 1, **retries,
            "log": {"remoteLocation": f"https://gl/diagnostics/CP1/{TOKEN_A}", **log}}


@pytest.mark.parametrize(("payload", "problem"), [
    (get_log(), None),
    (get_log(oldestTimestamp="2026-01-01T00:00:00Z", latestTimestamp="2026-01-02T00:00:00Z"),
     None),
    (get_log(remoteLocation=f"https://gl/diagnostics/CP2/{TOKEN_A}"),
     "log.remoteLocation: GridLink's upload location of 'CP2'"),
    (get_log(remoteLocation="mailto:ops@example.com"), "log.remoteLocation: unsupported"),
    (get_log(oldestTimestamp="2026-01-02T00:00:00Z", latestTimestamp="2026-01-01T00:00:00Z"),
     "oldestTimestamp is after log.latestTimestamp"),
    (get_log(retries=-1), "retries must not be negative"),
])
def test_get_log_checks(payload: dict[str, Any], problem: str | None) -> None:
    found = get_log_problem(payload, "CP1")
    assert found == problem if problem is None else problem in (found or "")


def signed(**firmware: Any) -> dict[str, Any]:
    retries = {k: firmware.pop(k) for k in ("retries", "retryInterval") if k in firmware}
    body = {"location": "https://fw.example/cp.bin", "retrieveDateTime": "2026-11-24T00:00:00Z",
            "signingCertificate": pem(certificate(ec_key(), "signing")).decode(),
            "signature": "MEUCIQ==", **firmware}
    return {"requestId": 5, "firmware": body, **retries}


@pytest.mark.parametrize(("payload", "problem"), [
    (signed(), None),
    (signed(installDateTime="2026-11-25T00:00:00Z"), None),
    (signed(installDateTime="2026-11-23T00:00:00Z"), "installDateTime is before"),
    (signed(location="gopher://x/cp.bin"), "firmware.location: unsupported scheme"),
    (signed(retries=-1), "retries must not be negative"),
    (signed(signingCertificate="-----BEGIN CERTIFICATE-----\nnope\n"), "not a PEM X.509"),
    (signed(signature="***"), "signature: not base64"),
])
def test_signed_update_firmware_checks(payload: dict[str, Any], problem: str | None) -> None:
    found = signed_update_firmware_problem(payload, utcnow())
    assert found == problem if problem is None else problem in (found or "")


# --- job status: the merge of everything the charger said -------------------------------

DIAG = rules.StatusMachine((("Accepted",), ("Uploading",)),
                           frozenset({"Uploaded", "UploadFailed", "NoDiagnostics",
                                      "Superseded"}),
                           answer_final=frozenset({"NoDiagnostics"}))


def report(status: str, second: int, source: str = rules.CHARGER) -> rules.StatusReport:
    return rules.StatusReport(status, NOW + timedelta(seconds=second), source)


def merged(answer: str, *reports: rules.StatusReport) -> str:
    return rules.merge_status(DIAG, answer, list(reports)).status


def test_a_charger_report_is_more_telling_than_the_answer_whenever_it_came() -> None:
    # UploadFailed before GetDiagnostics.conf without a fileName (GridLink issue 15).
    assert merged("NoDiagnostics", report("UploadFailed", 1)) == "UploadFailed"
    assert merged("NoDiagnostics") == "NoDiagnostics"
    assert merged("NoDiagnostics", report("Idle", 1)) == "NoDiagnostics"
    # GridLink's Superseded does not end what the answer finished.
    assert merged("NoDiagnostics", report("Superseded", 1, rules.CSMS)) == "NoDiagnostics"
    assert merged("Accepted", report("Superseded", 1, rules.CSMS)) == "Superseded"


def test_the_merge_is_the_same_in_any_arrival_order() -> None:
    said = [report("Uploading", 1), report("UploadFailed", 2), report("Uploading", 3),
            report("Uploaded", 4), report("Superseded", 5, rules.CSMS)]
    results = {rules.merge_status(DIAG, "Accepted", list(order)).status
               for order in itertools.permutations(said)}
    assert results == {"UploadFailed"}  # the first final word, in the charger's order
    merge = rules.merge_status(DIAG, "Accepted", said)
    assert merge.applied == {0, 1} and merge.at == NOW + timedelta(seconds=2)


def test_forward_only_never_after_a_final_status() -> None:
    assert merged("Accepted", report("Uploading", 2), report("Accepted", 3)) == "Uploading"
    # A failure reported before GridLink superseded the job stays the job's end.
    assert merged("Accepted", report("Superseded", 5, rules.CSMS),
                  report("UploadFailed", 4)) == "UploadFailed"
    assert merged("Accepted", report("Superseded", 5, rules.CSMS),
                  report("UploadFailed", 6)) == "Superseded"
    # At one instant, steps in order: Uploading then Uploaded, not the other way round.
    assert merged("Accepted", report("Uploaded", 1), report("Uploading", 1)) == "Uploaded"


def test_statuses_of_one_step_may_follow_each_other() -> None:
    machine = rules.StatusMachine((("Accepted",), ("Downloading", "DownloadPaused")),
                                  frozenset({"Installed"}))
    merge = rules.merge_status(machine, "Accepted", [
        report("Downloading", 1), report("DownloadPaused", 2), report("Downloading", 3)])
    assert merge.status == "Downloading" and merge.applied == {0, 1, 2}
    assert machine.may_follow("DownloadPaused") == ["Accepted", "Downloading", "DownloadPaused"]
    assert machine.may_follow("Idle") is None


def test_ftp_locations_carry_the_token_as_password() -> None:
    settings = memory_settings(ftp_port=2121, ftp_public_host="files.example",
                               ftp_protocols=["ftp", "ftps"])
    base = rules.public_base_url(settings, "ftps")
    assert base == "ftps://files.example:2121"
    location = rules.diagnostics_location(base, "CP 1/a", TOKEN_A)
    assert location == f"ftps://diagnostics:{TOKEN_A}@files.example:2121/diagnostics/CP%201%2Fa/"
    assert rules.parse_upload_location(location) == rules.UploadLocation("CP 1/a", TOKEN_A)
    assert rules.upload_location_problem(location, "location", "CP 1/a") is None
    assert "not 'CP2'" in str(rules.upload_location_problem(location, "location", "CP2"))
    url = rules.firmware_url(rules.public_base_url(settings, "ftp"), TOKEN_A, "fw 1.bin")
    assert url == f"ftp://firmware:{TOKEN_A}@files.example:2121/firmware/fw%201.bin"
    assert rules.parse_firmware_location(url, "http://x") == \
        rules.FirmwareLocation("fw 1.bin", TOKEN_A)
    # Somebody else's FTP server: not GridLink's.
    assert rules.parse_upload_location("ftp://user:secret@ftp.example/diagnostics/CP1/") \
        is None
    assert rules.parse_firmware_location("ftp://firmware:pw@ftp.example/firmware/a.bin",
                                         "http://x") is None
    settings = memory_settings(ftp_port=2121, ftp_public_port=30021,
                               ftp_public_host="127.0.0.1")
    assert rules.public_base_url(settings, "ftp") == "ftp://127.0.0.1:30021"
    with pytest.raises(ValueError, match="does not serve ftps"):
        rules.public_base_url(settings, "ftps")
    with pytest.raises(ValueError, match="GRIDLINK_FTP_PORT is 0"):
        rules.public_base_url(memory_settings(), "ftp")


def test_the_transfer_protocol_of_a_station() -> None:
    offered = ("https", "ftps", "ftp")
    assert rules.transfer_protocol("ftp", "ftps", "FTP", offered) == "ftp"   # --protocol
    assert rules.transfer_protocol(None, "ftps", "HTTP", offered) == "ftps"  # the operator's
    # The charger's SupportedFileTransferProtocols, most secure that GridLink serves first.
    assert rules.transfer_protocol(None, None, "FTP,FTPS", offered) == "ftps"
    assert rules.transfer_protocol(None, None, "HTTP, FTP", offered) == "ftp"
    assert rules.transfer_protocol(None, None, "HTTPS,FTP", offered) == "http"
    assert rules.transfer_protocol(None, None, "FTP", ("http",)) == "http"  # no FTP served
    assert rules.transfer_protocol(None, None, None, offered) == "http"
    assert rules.offered_protocols(memory_settings(
        ftp_port=21, ftp_protocols=["ftp", "ftps"], tls_cert_file="c", tls_key_file="k")) == \
        ("https", "ftps", "ftp")
    assert rules.offered_protocols(memory_settings()) == ("http",)
