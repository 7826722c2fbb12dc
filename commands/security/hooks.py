"""The security extension wired into the commands service (Security Whitepaper ed. 2).

- **SecurityEventNotification** (A04): stored once in ``security_events`` (source
  ``charger``; a resent or redelivered notification is the same document), answered ``{}``;
  critical events (§8) are logged at WARNING with the station id; each is published as
  event ``security.event`` (webhooks).
- **SignCertificate** (A02/A03): the CSR is checked (:func:`rules.check_csr`); a bad one is
  answered Rejected (A02.FR.12) and recorded as security event
  ``InvalidCertificateSigningRequest`` (source ``csms``); a good one is kept
  (``certificate_requests``) and answered Accepted (A02.FR.11). Once that answer is on its
  way the handler's event ``certificate.requested`` follows (so the charger has its
  SignCertificate.conf before any CertificateSigned); with GridLink's charger CA configured
  (:mod:`commands.security.ca`) its hook signs the CSR and sends **CertificateSigned**,
  queued until the station is back if it is offline; without, the request waits for an
  operator (``gridlink certificates sign``) — or for a CA integration that follows the event.
- **CertificateSigned** is checked before it is sent: the chain is valid for the station
  (:func:`rules.check_chain`), fits its CertificateSignedMaxSize when it reported one, and its
  certificate carries the public key of an open request of that station. The charger's
  answer ends the request and records the certificate (``charger_certificates``).
- **InstallCertificate** (M05): one root CA certificate, checked before sending; Accepted
  adds it to the station's inventory (``installed_certificates``).
- **GetInstalledCertificateIds** (M03): the answer replaces the inventory of that type.
- **DeleteCertificate** (M04): refused before sending when GridLink read the station's whole
  inventory and no certificate matches; Accepted (or NotFound) removes it from the inventory.
- **ExtendedTriggerMessage**: connectorId only for MeterValues and StatusNotification.
- A background job keeps the expiry gauge fresh (:mod:`commands.security.expiry`).

Every command sent here goes through ``commands.submit(..., origin="security")``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from cryptography import x509

from commands import station_configuration
from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from commands.security import ca, expiry, repository, rules
from commands.security import certificate_hashes as hashes
from services import security_events, stations
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.events import SECURITY_EVENT
from services.ocpp16 import call, call_result, iso, parse_time, utcnow
from services.router import CallContext
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.security")

#: The event a SignCertificate the CSMS accepted emits (after its answer).
REQUESTED = "certificate.requested"
#: How long a CertificateSigned for an offline station waits for it.
SIGNED_WAITS = timedelta(days=1)
ORIGIN = "security"


def signed_command_id(request_id: str, session: str, unique_id: str) -> str:
    """The CertificateSigned that answers one SignCertificate call (the same call delivered
    again sends nothing more)."""
    call_id = hashlib.sha256(f"{session}\0{unique_id}".encode()).hexdigest()[:16]
    return f"CertificateSigned-{request_id}-{call_id}"


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    runtime = hooks.runtime
    db = runtime.store.db
    router = hooks.router
    organizations = runtime.settings.tls_client_organizations
    charger_ca = ca.from_settings(runtime.settings)
    hooks.add_indexes(repository.INDEXES)
    hooks.add_indexes(security_events.INDEXES)
    hooks.background.append(expiry.keep_fresh)

    # --- security events --------------------------------------------------------------------

    @router.on("SecurityEventNotification")
    async def security_event(request: call.SecurityEventNotification, ctx: CallContext
                             ) -> call_result.SecurityEventNotification:
        document = security_events.event_document(
            station=ctx.station, type=request.type, at=parse_time(request.timestamp),
            source=security_events.CHARGER, tech_info=request.tech_info,
            received_at=ctx.received_at)
        critical = rules.is_critical(request.type)
        if await security_events.record(db, document):
            log.log(logging.WARNING if critical else logging.INFO, "security event", extra={
                "station": ctx.station, "type": request.type, "critical": critical,
                "tech_info": request.tech_info, "at": request.timestamp})
        # emitted again for a resent notification (same event_id: the stored event's id)
        ctx.emit(SECURITY_EVENT, {
            "station": ctx.station, "type": request.type, "critical": critical,
            "tech_info": request.tech_info, "at": iso(document["at"]),
            "received_at": iso(ctx.received_at)}, document["_id"])
        return call_result.SecurityEventNotification()

    # --- SignCertificate --------------------------------------------------------------------

    @router.on("SignCertificate")
    async def sign_certificate(request: call.SignCertificate, ctx: CallContext
                               ) -> call_result.SignCertificate:
        station = await repository.station_document(db, ctx.station)
        identity = stations.certificate_identity(station, ctx.station)
        try:
            csr = rules.check_csr(request.csr, identity=identity, organizations=organizations)
        except rules.CertificateRejected as exc:
            log.warning("certificate signing request rejected", extra={
                "station": ctx.station, "reason": str(exc)})
            await security_events.record(db, security_events.event_document(
                station=ctx.station, type=rules.INVALID_CSR, at=ctx.received_at,
                source=security_events.CSMS, tech_info=str(exc)[:255],
                key=f"{ctx.station}\0{ctx.session}\0{ctx.unique_id}\0{rules.INVALID_CSR}"))
            return call_result.SignCertificate(status="Rejected")
        document = repository.new_request(ctx.station, request.csr, csr, ctx.received_at)
        await repository.save_request(db, document)
        log.info("certificate signing request accepted", extra={
            "station": ctx.station, "request_id": document["_id"],
            "signer": "gridlink" if charger_ca else "external CA"})
        ctx.emit(REQUESTED, {"station": ctx.station, "request_id": document["_id"],
                             "session": ctx.session, "unique_id": ctx.unique_id,
                             "received_at": iso(ctx.received_at), "csr": request.csr})
        return call_result.SignCertificate(status="Accepted")

    @hooks.on_event(REQUESTED)
    async def sign_with_own_ca(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        if charger_ca is None:
            return  # an operator or a CA integration answers it
        request_id = str(event["request_id"])
        request = await rt.with_store(lambda: repository.get_request(db, request_id))
        if request is None or request["status"] not in (repository.PENDING, repository.ISSUED):
            return  # superseded by a newer CSR, or answered already
        if request.get("chain") is None:
            leaf = charger_ca.issue(x509.load_pem_x509_csr(request["csr"].encode()), utcnow())
            chain, issued = charger_ca.chain(leaf), rules.facts(leaf)
            await rt.with_store(lambda: repository.store_chain(db, request_id, chain, issued))
            request = await rt.with_store(lambda: repository.get_request(db, request_id))
            if request is None or request.get("chain") is None:
                return  # superseded meanwhile
            log.info("charger certificate issued", extra={
                "station": request["station"], "serial": request["serial"],
                "not_after": iso(request["not_after"])})
        await commands.submit(CommandRequest(
            command_id=signed_command_id(request_id, str(event["session"]),
                                         str(event["unique_id"])),
            station=request["station"], action="CertificateSigned",
            payload={"certificateChain": request["chain"]}, queue_if_offline=True,
            expires_at=utcnow() + SIGNED_WAITS), origin=ORIGIN)

    # --- CertificateSigned ------------------------------------------------------------------

    @hooks.validate("CertificateSigned")
    async def chain_answers_a_request(rt: ServiceRuntime, request: CommandRequest) -> None:
        chain = request.payload["certificateChain"]
        station = await rt.with_store(lambda: repository.station_document(db, request.station))
        identity = stations.certificate_identity(station, request.station)
        try:
            leaf = rules.check_chain(chain, identity=identity, now=utcnow())
        except rules.CertificateRejected as exc:
            raise CommandRefused("PropertyConstraintViolation", str(exc)) from None
        configuration = await rt.with_store(lambda: station_configuration.read(
            db, request.station))
        # §5.1 names the key CertificateSignedMaxSize, §7.3 CertificateSignedMaxChainSize:
        # chargers report either.
        limit = configuration.integer("CertificateSignedMaxChainSize")
        if limit is None:
            limit = configuration.integer("CertificateSignedMaxSize")
        problem = rules.chain_size_problem(chain, limit)
        refuse(("PropertyConstraintViolation", problem) if problem else None)
        if await rt.with_store(lambda: repository.request_for_key(
                db, request.station, leaf.public_key_id)) is None:
            raise CommandRefused("UnknownCertificateRequest", (
                f"certificateChain: {request.station} has no open certificate signing "
                "request for this certificate's public key"))

    @hooks.after("CertificateSigned")
    async def certificate_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        if answer not in ("Accepted", "Rejected"):
            return  # not answered (timeout, offline...): the request stays open
        station = command["station"]
        leaf = rules.facts(rules.load_certificates(command["payload"]["certificateChain"],
                                                   "certificateChain")[0])
        request = await rt.with_store(lambda: repository.request_for_key(
            db, station, leaf.public_key_id,
            [*repository.OPEN, repository.ACCEPTED, repository.SUPERSEDED]))
        request_id = request["_id"] if request is not None else None
        if request_id is not None:
            status = repository.ACCEPTED if answer == "Accepted" else repository.REJECTED
            await rt.with_store(lambda: repository.request_answered(
                db, request_id, status, command["_id"]))
        await rt.with_store(lambda: repository.record_charger_certificate(
            db, station, leaf, status=answer, request_id=request_id,
            command_id=command["_id"], answered_at=command.get("updated_at") or utcnow()))
        (log.info if answer == "Accepted" else log.warning)(
            "charger certificate answered", extra={
                "station": station, "serial": leaf.serial, "answer": answer})

    # --- installed certificates -------------------------------------------------------------

    @hooks.validate("InstallCertificate")
    async def install_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = rules.install_problem(request.payload, utcnow())
        refuse(("PropertyConstraintViolation", problem) if problem else None)

    @hooks.after("InstallCertificate")
    async def installed(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if (command.get("response") or {}).get("status") != "Accepted":
            return
        payload = command["payload"]
        entry = hashes.installed_entry(payload["certificate"],
                                       installed_at=command.get("updated_at") or utcnow())
        await rt.with_store(lambda: repository.add_installed(
            db, command["station"], payload["certificateType"], entry))

    @hooks.after("GetInstalledCertificateIds")
    async def inventory_read(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        response = command.get("response") or {}
        if command["status"] != "accepted" or response.get("status") not in (
                "Accepted", "NotFound"):
            return
        station, certificate_type = command["station"], command["payload"]["certificateType"]
        reported = response.get("certificateHashData", []) \
            if response["status"] == "Accepted" else []
        known = await rt.with_store(lambda: repository.inventories(db, station))
        entries = hashes.merge_reported(
            [e for doc in known if doc["type"] == certificate_type
             for e in doc.get("certificates", [])], reported)
        await rt.with_store(lambda: repository.replace_inventory(
            db, station, certificate_type, entries, command.get("updated_at") or utcnow()))

    @hooks.validate("DeleteCertificate")
    async def delete_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        known = await rt.with_store(lambda: repository.inventories(db, request.station))
        problem = hashes.delete_refusal(known, request.payload["certificateHashData"],
                                        request.station)
        refuse(("UnknownCertificate", problem) if problem else None)

    @hooks.after("DeleteCertificate")
    async def deleted(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if (command.get("response") or {}).get("status") not in ("Accepted", "NotFound"):
            return  # Failed: it is still there
        wanted = command["payload"]["certificateHashData"]
        for doc in await rt.with_store(lambda: repository.inventories(db, command["station"])):
            entries = doc.get("certificates", [])
            left = hashes.remaining(entries, wanted)
            if len(left) != len(entries):
                await rt.with_store(lambda doc=doc, left=left: repository.set_certificates(
                    db, doc["_id"], left))

    # --- ExtendedTriggerMessage -------------------------------------------------------------

    @hooks.validate("ExtendedTriggerMessage")
    async def trigger_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = rules.trigger_problem(request.payload)
        refuse(("PropertyConstraintViolation", problem) if problem else None)
