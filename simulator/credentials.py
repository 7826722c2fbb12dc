"""How a simulated charger proves who it is over HTTP: the Basic ``Authorization`` header.

Security profiles 1 and 2 (OCPP 1.6 Security Whitepaper ed. 2, A00.FR.202-205 and
A00.FR.301-304): the charger sends ``Authorization: Basic base64(<id>:<password>)`` with
every connection request, the user being its identity as in the URL and the password its
``AuthorizationKey`` configuration key.  That key starts as ``--password`` (a template:
``{n}`` the charger's number, ``{id}`` its identity) or the charger's line of
``--password-file``, and the CSMS may change it (A01: the charger then reconnects with it).

Client certificates (profile 3) are TLS's business: :mod:`simulator.tls`.
"""

from __future__ import annotations

import base64


def read_password_file(path: str) -> dict[str, str]:
    """The passwords of ``path``: one ``ID PASSWORD`` per line (blank lines and ``#``
    comments are skipped); ``ValueError`` names the first line that is neither."""
    passwords: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split(None, 1)
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: expected 'ID PASSWORD'")
            passwords[parts[0]] = parts[1].strip()
    return passwords


def basic_authorization(charger_id: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic (RFC 7617) for a charger."""
    token = base64.b64encode(f"{charger_id}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def headers(charger_id: str, password: str | None) -> dict[str, str] | None:
    """The extra headers of a charger's upgrade request: Basic auth when it has a password."""
    if not password:
        return None
    return {"Authorization": basic_authorization(charger_id, password)}


__all__ = ["basic_authorization", "headers", "read_password_file"]
