"""The certificates the commands service keeps in MongoDB (security events are the shared
record of :mod:`services.security_events`):

- ``certificate_requests``: one per CSR a charger sent with SignCertificate and GridLink
  accepted, ``_id`` = :func:`commands.security.rules.request_id` (the same CSR again is the
  same request): ``{station, csr, common_name, organization, key, public_key_id,
  received_at, status, chain?, serial?, not_after?, signed_by?, command_id?,
  superseded_by?, updated_at}``. Status: ``pending`` (waiting for a certificate) →
  ``issued`` (GridLink's CA signed it; CertificateSigned on its way) → ``accepted`` |
  ``rejected`` (the charger's CertificateSigned.conf); ``superseded`` once the station sent
  a newer CSR (its key pair replaced this one).
- ``charger_certificates``: one per charger certificate sent with CertificateSigned and
  answered, ``_id`` = its SHA-256 fingerprint: ``{station, serial, common_name, subject,
  issuer, not_before, not_after, request_id, command_id, status: Accepted|Rejected,
  answered_at, superseded_by?}``. The station's newest Accepted one is its current
  certificate; older ones are ``superseded_by`` it.
- ``installed_certificates``: one per station and CertificateUseEnumType, ``_id`` =
  ``{station}/{type}``: ``{station, type, certificates: [entry], complete, read_at?,
  updated_at}`` (entries: :mod:`commands.security.certificate_hashes`). ``complete``: the
  list is the charger's own answer to GetInstalledCertificateIds (since changed only by
  GridLink's InstallCertificate and DeleteCertificate).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from commands.security import rules
from commands.security.certificate_hashes import Entry
from services import stations
from services.ocpp16 import iso, utcnow
from services.store import IndexSpec

Db = AsyncDatabase[dict[str, Any]]

CERTIFICATE_REQUESTS = "certificate_requests"
CHARGER_CERTIFICATES = "charger_certificates"
INSTALLED_CERTIFICATES = "installed_certificates"
PENDING, ISSUED, ACCEPTED, REJECTED, SUPERSEDED = (
    "pending", "issued", "accepted", "rejected", "superseded")
#: Requests a CertificateSigned may still answer.
OPEN = [PENDING, ISSUED, REJECTED]

INDEXES: IndexSpec = {
    CERTIFICATE_REQUESTS: [
        IndexModel([("station", ASCENDING), ("received_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("received_at", DESCENDING)]),
    ],
    CHARGER_CERTIFICATES: [
        IndexModel([("station", ASCENDING), ("not_before", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("not_after", ASCENDING)]),
    ],
    INSTALLED_CERTIFICATES: [IndexModel([("station", ASCENDING)])],
}


async def station_document(db: Db, station: str) -> dict[str, Any] | None:
    """What the station registry says about the station's certificate (its CN)."""
    return await db[stations.COLLECTION].find_one({"_id": station}, {"certificate_cn": 1})


# --- certificate signing requests ---------------------------------------------------------


def new_request(station: str, csr: str, facts: rules.CsrFacts, received_at: datetime
                ) -> dict[str, Any]:
    return {"_id": rules.request_id(station, facts.der), "station": station, "csr": csr,
            "common_name": facts.common_name, "organization": facts.organization,
            "key": facts.key, "public_key_id": facts.public_key_id,
            "received_at": received_at, "status": PENDING, "updated_at": utcnow()}


async def save_request(db: Db, document: dict[str, Any]) -> None:
    """Keep a request (once), and supersede the station's older open ones — or this one, when
    a newer CSR came first (deliveries out of order)."""
    requests = db[CERTIFICATE_REQUESTS]
    with contextlib.suppress(DuplicateKeyError):
        await requests.insert_one(document)
    station, at, own = document["station"], document["received_at"], document["_id"]
    now = utcnow()
    await requests.update_many(
        {"station": station, "_id": {"$ne": own}, "status": {"$in": OPEN},
         "received_at": {"$lte": at}},
        {"$set": {"status": SUPERSEDED, "superseded_by": own, "updated_at": now}})
    newer = await requests.find_one({"station": station, "received_at": {"$gt": at},
                                     "status": {"$ne": SUPERSEDED}}, {"_id": 1})
    if newer is not None:
        await requests.update_one({"_id": own, "status": {"$in": OPEN}}, {"$set": {
            "status": SUPERSEDED, "superseded_by": newer["_id"], "updated_at": now}})


async def get_request(db: Db, request_id: str) -> dict[str, Any] | None:
    return await db[CERTIFICATE_REQUESTS].find_one({"_id": request_id})


async def request_for_key(db: Db, station: str, public_key_id: str,
                          statuses: list[str] = OPEN) -> dict[str, Any] | None:
    """The station's newest request for this public key in one of ``statuses`` (by default
    the open ones), or None."""
    return await db[CERTIFICATE_REQUESTS].find_one(
        {"station": station, "public_key_id": public_key_id, "status": {"$in": statuses}},
        sort=[("received_at", DESCENDING)])


async def store_chain(db: Db, request_id: str, chain: str, leaf: rules.CertificateFacts
                      ) -> None:
    """The chain GridLink's CA made for a pending request (the first one made stays)."""
    await db[CERTIFICATE_REQUESTS].update_one(
        {"_id": request_id, "status": PENDING, "chain": {"$exists": False}},
        {"$set": {"status": ISSUED, "chain": chain, "serial": leaf.serial,
                  "not_after": leaf.not_after, "signed_by": "gridlink",
                  "updated_at": utcnow()}})


async def request_answered(db: Db, request_id: str, status: str, command_id: str) -> None:
    """The charger answered a CertificateSigned for this request (accepted or rejected)."""
    await db[CERTIFICATE_REQUESTS].update_one(
        {"_id": request_id, "status": {"$in": OPEN}},
        {"$set": {"status": status, "command_id": command_id, "updated_at": utcnow()}})


async def pending_rows(db: Db, station: str | None) -> list[dict[str, Any]]:
    """Requests waiting for a certificate, oldest first, as CLI rows."""
    query: dict[str, Any] = {"status": PENDING}
    if station:
        query["station"] = station
    rows = []
    async for doc in db[CERTIFICATE_REQUESTS].find(query, sort=[("received_at", ASCENDING)]):
        rows.append({"station": doc["station"], "received": iso(doc["received_at"]),
                     "commonName": doc["common_name"], "organization": doc["organization"],
                     "key": doc["key"], "requestId": doc["_id"]})
    return rows


# --- charger certificates -----------------------------------------------------------------


async def record_charger_certificate(db: Db, station: str, leaf: rules.CertificateFacts, *,
                                     status: str, request_id: str | None, command_id: str,
                                     answered_at: datetime) -> None:
    """A charger certificate the station answered (Accepted: now its current one)."""
    certificates = db[CHARGER_CERTIFICATES]
    document = {"_id": leaf.fingerprint, "station": station, "serial": leaf.serial,
                "common_name": leaf.common_name, "subject": leaf.subject,
                "issuer": leaf.issuer, "not_before": leaf.not_before,
                "not_after": leaf.not_after, "request_id": request_id,
                "command_id": command_id, "status": status, "answered_at": answered_at}
    with contextlib.suppress(DuplicateKeyError):
        await certificates.insert_one(document)
    if status != "Accepted":
        return
    await certificates.update_many(
        {"station": station, "status": "Accepted", "_id": {"$ne": leaf.fingerprint},
         "not_before": {"$lte": leaf.not_before}, "superseded_by": None},
        {"$set": {"superseded_by": leaf.fingerprint}})
    newer = await certificates.find_one(
        {"station": station, "status": "Accepted", "not_before": {"$gt": leaf.not_before}},
        {"_id": 1})
    if newer is not None:
        await certificates.update_one({"_id": leaf.fingerprint},
                                      {"$set": {"superseded_by": newer["_id"]}})


# --- installed certificates (the stations' inventories) -----------------------------------


def inventory_id(station: str, certificate_type: str) -> str:
    return f"{station}/{certificate_type}"


async def inventories(db: Db, station: str) -> list[dict[str, Any]]:
    """Every inventory GridLink keeps of the station (one per certificate type)."""
    return [doc async for doc in db[INSTALLED_CERTIFICATES].find({"station": station})]


async def add_installed(db: Db, station: str, certificate_type: str, entry: Entry) -> None:
    """A certificate the station accepted with InstallCertificate (once)."""
    inventory = db[INSTALLED_CERTIFICATES]
    key = inventory_id(station, certificate_type)
    with contextlib.suppress(DuplicateKeyError):  # there already: the filter found none
        await inventory.update_one(
            {"_id": key, "certificates.id": {"$ne": entry["id"]}},
            {"$push": {"certificates": entry}, "$set": {"updated_at": utcnow()},
             "$setOnInsert": {"station": station, "type": certificate_type,
                              "complete": False}},
            upsert=True)


async def replace_inventory(db: Db, station: str, certificate_type: str,
                            entries: list[Entry], read_at: datetime) -> None:
    """The station's answer to GetInstalledCertificateIds (an older answer never replaces a
    newer one)."""
    with contextlib.suppress(DuplicateKeyError):  # a newer answer is stored
        await db[INSTALLED_CERTIFICATES].update_one(
            {"_id": inventory_id(station, certificate_type),
             "$or": [{"read_at": {"$exists": False}}, {"read_at": {"$lte": read_at}}]},
            {"$set": {"station": station, "type": certificate_type, "certificates": entries,
                      "complete": True, "read_at": read_at, "updated_at": utcnow()}},
            upsert=True)


async def set_certificates(db: Db, inventory_key: str, entries: list[Entry]) -> None:
    """An inventory's certificates after a DeleteCertificate."""
    await db[INSTALLED_CERTIFICATES].update_one(
        {"_id": inventory_key}, {"$set": {"certificates": entries, "updated_at": utcnow()}})


def _entry_row(doc: dict[str, Any], entry: Entry) -> dict[str, Any]:
    data = entry["hash_data"]
    not_after = entry.get("not_after")
    return {"type": doc["type"], "serialNumber": data["serialNumber"],
            "subject": entry.get("subject"), "notAfter": iso(not_after) if not_after else None,
            "source": entry.get("source"), "hashData": data}


async def inventory_rows(db: Db, station: str, certificate_type: str | None = None
                         ) -> list[dict[str, Any]]:
    """The station's known installed certificates, as CLI rows."""
    rows = []
    for doc in sorted(await inventories(db, station), key=lambda d: d["type"]):
        if certificate_type is None or doc["type"] == certificate_type:
            rows += [_entry_row(doc, entry) for entry in doc.get("certificates", [])]
    return rows


# --- expiry -------------------------------------------------------------------------------


async def _expiring(db: Db, limit: datetime) -> list[dict[str, Any]]:
    """Current charger certificates and known installed ones whose notAfter is at or before
    ``limit``, soonest first."""
    found = []
    async for doc in db[CHARGER_CERTIFICATES].find(
            {"status": "Accepted", "superseded_by": None, "not_after": {"$lte": limit}}):
        found.append({"kind": CHARGER_KIND, "station": doc["station"],
                      "serialNumber": doc["serial"], "subject": doc["subject"],
                      "notAfter": doc["not_after"]})
    async for doc in db[INSTALLED_CERTIFICATES].find({"certificates.not_after": {"$lte": limit}}):
        for entry in doc["certificates"]:
            if entry.get("not_after") is not None and entry["not_after"] <= limit:
                found.append({"kind": doc["type"], "station": doc["station"],
                              "serialNumber": entry["hash_data"]["serialNumber"],
                              "subject": entry.get("subject"), "notAfter": entry["not_after"]})
    found.sort(key=lambda row: row["notAfter"])
    return found


#: The kind of a charger certificate in the expiry report (the others: their
#: CertificateUseEnumType).
CHARGER_KIND = "ChargePointCertificate"


async def expiring_rows(db: Db, now: datetime, days: float) -> list[dict[str, Any]]:
    """Certificates that expire within ``days`` (or have expired), soonest first, as CLI
    rows."""
    rows = await _expiring(db, rules.expiry_limit(now, days))
    for row in rows:
        row["daysLeft"] = rules.days_left(row["notAfter"], now)
        row["notAfter"] = iso(row["notAfter"])
    return rows


async def expiring_counts(db: Db, now: datetime) -> dict[tuple[str, int], int]:
    """How many certificates expire within each of ``rules.EXPIRY_WINDOWS`` days (0: have
    expired), by kind: ``charger`` (current charger certificates) or ``installed``."""
    counts = {(kind, days): 0 for kind in ("charger", "installed")
              for days in rules.EXPIRY_WINDOWS}
    for row in await _expiring(db, rules.expiry_limit(now, max(rules.EXPIRY_WINDOWS))):
        kind = "charger" if row["kind"] == CHARGER_KIND else "installed"
        for days in rules.EXPIRY_WINDOWS:
            if row["notAfter"] <= rules.expiry_limit(now, days):
                counts[(kind, days)] += 1
    return counts
