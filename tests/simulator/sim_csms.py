"""A tiny OCPP 1.6 central system for the simulator's tests: the ``ocpp`` library's ChargePoint.

It answers every charger-initiated action with ``@on`` handlers, counts what it received per
action, can answer the first BootNotification of chosen chargers with Pending, refuses ids
starting with ``UNKNOWN`` with HTTP 404, and can run a script of CSMS-initiated calls once a
charger is Accepted.

Security profiles: given a ``tls`` context it serves ``wss://`` (the context decides whether
client certificates are required); given ``passwords`` it refuses a charger whose HTTP Basic
password is not its own with 401.  It records the password and the client certificate's CN
of every handshake, and the TLS version of every connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, GenericStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

Script = Callable[["CsmsChargePoint"], Awaitable[None]]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class CsmsChargePoint(ChargePoint):
    """The central system's side of one charger connection."""

    def __init__(self, charger_id: str, connection: ServerConnection, csms: Csms) -> None:
        super().__init__(charger_id, connection, response_timeout=5)
        self.csms = csms

    def _saw(self, action: str) -> None:
        self.csms.received[action] += 1
        self.csms.by_charger[self.id][action] += 1
        self.csms.event(self.id, action).set()

    async def wait_for(self, action: str) -> None:
        """Wait until this charger next sends ``action`` (bounded by the test's timeout)."""
        event = self.csms.event(self.id, action)
        event.clear()
        await asyncio.wait_for(event.wait(), timeout=5)

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        self._saw("BootNotification")
        if self.id in self.csms.pending_first and self.id not in self.csms.pending_done:
            self.csms.pending_done.add(self.id)
            return call_result.BootNotification(
                current_time=_now(), interval=1, status=RegistrationStatus.pending
            )
        return call_result.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        self._saw("Heartbeat")
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> Any:
        self._saw("StatusNotification")
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        self._saw("Authorize")
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start(self, **_: Any) -> Any:
        self._saw("StartTransaction")
        return call_result.StartTransaction(
            transaction_id=next(self.csms.transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)
    def on_stop(self, **_: Any) -> Any:
        self._saw("StopTransaction")
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> Any:
        self._saw("MeterValues")
        return call_result.MeterValues()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_: Any) -> Any:
        self._saw("FirmwareStatusNotification")
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, **_: Any) -> Any:
        self._saw("DiagnosticsStatusNotification")
        return call_result.DiagnosticsStatusNotification()

    # --- the security extension: what was received is kept in csms.security ---------------

    def _keep(self, action: str, payload: dict[str, Any]) -> None:
        self.csms.security.setdefault(self.id, []).append((action, payload))
        self._saw(action)

    @on(Action.security_event_notification)
    def on_security_event(self, **payload: Any) -> Any:
        self._keep("SecurityEventNotification", payload)
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str) -> Any:
        self._keep("SignCertificate", {"csr": csr})
        return call_result.SignCertificate(status=GenericStatus.accepted)

    @on(Action.log_status_notification)
    def on_log_status(self, **payload: Any) -> Any:
        self._keep("LogStatusNotification", payload)
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status(self, **payload: Any) -> Any:
        self._keep("SignedFirmwareStatusNotification", payload)
        return call_result.SignedFirmwareStatusNotification()


def _basic_password(header: str | None, charger_id: str) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return password if user == charger_id else None


class Csms:
    """The server: ``async with Csms() as csms: ... csms.url``."""

    def __init__(
        self,
        pending_first: set[str] | None = None,
        script: Script | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        passwords: dict[str, str] | None = None,
    ):
        self.pending_first = pending_first or set()
        self.tls = tls
        self.passwords = passwords
        self.authorizations: dict[str, list[str | None]] = {}  # passwords, per handshake
        self.peer_names: dict[str, list[str | None]] = {}  # client certificate CNs
        self.peer_certificates: dict[str, list[bytes | None]] = {}  # and their DER
        self.tls_versions: Counter[str] = Counter()
        self.security: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # per charger, in order
        self.pending_done: set[str] = set()
        self.script = script
        self.received: Counter[str] = Counter()
        self.by_charger: dict[str, Counter[str]] = {}
        self.connections: Counter[str] = Counter()
        self.charge_points: dict[str, CsmsChargePoint] = {}
        self.transaction_ids = itertools.count(1000)
        self.script_done = asyncio.Event()
        self.script_error: BaseException | None = None
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, charger_id: str, action: str) -> asyncio.Event:
        """Set whenever ``charger_id`` sends ``action`` (on any of its connections)."""
        return self._events.setdefault((charger_id, action), asyncio.Event())

    async def __aenter__(self) -> Csms:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            process_request=self._admit,
            ping_interval=None,
            ssl=self.tls,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"{'wss' if self.tls else 'ws'}://127.0.0.1:{port}/ocpp"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = unquote(request.path.rsplit("/", 1)[-1])
        if charger_id.startswith("UNKNOWN"):
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
        password = _basic_password(request.headers.get("Authorization"), charger_id)
        self.authorizations.setdefault(charger_id, []).append(password)
        tls = connection.transport.get_extra_info("ssl_object")
        if tls is not None:
            self.tls_versions[tls.version()] += 1
            subject = dict(
                pair for rdn in (tls.getpeercert() or {}).get("subject", ()) for pair in rdn
            )
            self.peer_names.setdefault(charger_id, []).append(subject.get("commonName"))
            der = tls.getpeercert(binary_form=True)
            self.peer_certificates.setdefault(charger_id, []).append(der)
        if self.passwords is not None and self.passwords.get(charger_id) != password:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="sim"'
            return response
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        charger_id = unquote(connection.request.path.rsplit("/", 1)[-1])
        self.connections[charger_id] += 1
        self.by_charger.setdefault(charger_id, Counter())
        charge_point = CsmsChargePoint(charger_id, connection, self)
        self.charge_points[charger_id] = charge_point
        if self.script is not None and self.connections[charger_id] == 1:
            task = asyncio.get_running_loop().create_task(self._run_script(charge_point))
            self._tasks.add(task)
        with contextlib.suppress(ConnectionClosed):
            await charge_point.start()

    async def _run_script(self, charge_point: CsmsChargePoint) -> None:
        assert self.script is not None
        try:
            await charge_point.wait_for("StatusNotification")
            await self.script(charge_point)
        except BaseException as exc:
            self.script_error = exc
            raise
        finally:
            self.script_done.set()


class FileServer:
    """A tiny HTTP(S) file server (``async with FileServer() as files: files.url``): GET serves
    ``files.content[path]`` (404 otherwise), PUT stores the body in ``files.uploads[path]``
    (answered ``put_status``, 201 by default).  ``files.requests`` lists (method, path)."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, put_status: int = 201) -> None:
        self.tls = tls
        self.put_status = put_status
        self.content: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.upload_types: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, path))
            status, answer = 405, b""
            if method == "GET":
                status, answer = (200, self.content[path]) if path in self.content else (404, b"")
            elif method == "PUT":
                self.uploads[path] = body
                self.upload_types[path] = headers.get("content-type", "")
                status = self.put_status
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that went away: nothing to answer
        finally:
            writer.close()
