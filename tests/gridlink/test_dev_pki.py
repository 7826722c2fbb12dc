"""``gridlink security dev-pki``: certificates that GridLink's own checks accept."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from services import tls


def test_the_development_certificates_pass_gridlinks_checks(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    result = subprocess.run([sys.executable, "-m", "gridlink", "security", "dev-pki",
                             str(directory), "--station", "CP003", "--organization", "Acme"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"GRIDLINK_TLS_CERT_FILE={directory / 'server.pem'}" in result.stdout
    server = tls.server_context(str(directory / "server.pem"), str(directory / "server.key"),
                                str(directory / "ca.pem"))
    assert server.verify_mode == ssl.CERT_OPTIONAL
    client = x509.load_pem_x509_certificate((directory / "CP003.pem").read_bytes())
    tls.verify_client(client, str(directory / "ca.pem"), datetime.now(UTC))
    described = tls.describe(client)
    assert (described.common_name, described.organizations) == ("CP003", ("Acme",))
    assert (directory / "ca.key").stat().st_mode & 0o077 == 0  # the keys are private
    again = subprocess.run([sys.executable, "-m", "gridlink", "security", "dev-pki",
                            str(directory)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "holds a CA already" in again.stderr
