"""Files without I/O: GridLink's upload locations and firmware URLs, and the checks
UpdateFirmware and GetDiagnostics requests must pass."""

from __future__ import annotations

from typing import Any

import pytest

from commands.files import rules
from commands.files.rules import get_diagnostics_problem, update_firmware_problem

TOKEN_A = "a" * 32


def test_upload_locations_are_recognised_by_path() -> None:
    location = rules.diagnostics_location("https://gl.example/files/", "CP 1/a", TOKEN_A)
    assert location == f"https://gl.example/files/diagnostics/CP%201%2Fa/{TOKEN_A}"
    assert rules.parse_upload_location(location) == rules.UploadLocation("CP 1/a", TOKEN_A)
    assert rules.parse_upload_location(f"ftp://other/diagnostics/CP1/{TOKEN_A}/") is not None
    assert rules.parse_upload_location("ftp://other/diagnostics/CP1/logs") is None
    assert rules.parse_upload_location("http://other/upload") is None


def test_firmware_urls_of_this_server() -> None:
    base = "http://gl:9180"
    assert rules.firmware_name_in(rules.firmware_url(base, "a.bin"), base) == "a.bin"
    assert rules.firmware_name_in("http://elsewhere/firmware/a.bin", base) is None


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
