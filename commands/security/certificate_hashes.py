"""CertificateHashDataType (Security Whitepaper ed. 2, §6.1), without I/O: how a certificate
is named in GetInstalledCertificateIds.conf and DeleteCertificate.req, and what GridLink
knows of a station's installed certificates.

As in OCSP's CertID (RFC 6960 §4.1.1), which OCPP's type copies:

- ``issuerNameHash``: the hash of the DER encoding of the certificate's issuer name;
- ``issuerKeyHash``: the hash of the issuer's public key — the value of the BIT STRING
  ``subjectPublicKey`` in the issuer's certificate (without tag, length and unused-bits
  byte), not the whole SubjectPublicKeyInfo;
- ``serialNumber``: the serial number in hexadecimal, without ``0x`` or leading zeros;
- ``hashAlgorithm``: SHA256 (A00.FR.506) unless a charger reported another.

Hashes are compared case-insensitively and serials without leading zeros, because chargers
differ in how they print them. An inventory entry is ``{id, hash_data, pem?, subject?,
not_after?, fingerprint?, source}``: ``pem`` when GridLink installed it, so its hashes can be
computed again with whatever algorithm a charger uses (M04.FR.07).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

#: HashAlgorithmEnumType -> hashlib name.
ALGORITHMS = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
DEFAULT_ALGORITHM = "SHA256"
#: CertificateUseEnumType: what InstallCertificate and GetInstalledCertificateIds name.
CERTIFICATE_TYPES = ("CentralSystemRootCertificate", "ManufacturerRootCertificate")

HashData = dict[str, str]
Entry = dict[str, Any]


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``offset``."""
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[offset:offset + size], "big")
        offset += size
    return tag, offset, offset + length


def subject_public_key(certificate: x509.Certificate) -> bytes:
    """The value of the certificate's ``subjectPublicKey`` BIT STRING."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, start, _ = _tlv(spki, 0)  # SubjectPublicKeyInfo ::= SEQUENCE {
    _, _, algorithm_end = _tlv(spki, start)  # algorithm AlgorithmIdentifier,
    tag, bits_start, bits_end = _tlv(spki, algorithm_end)  # subjectPublicKey BIT STRING }
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo without a BIT STRING")
    return spki[bits_start + 1:bits_end]  # the first byte counts unused bits (0)


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate | None = None,
              algorithm: str = DEFAULT_ALGORITHM) -> HashData:
    """The CertificateHashDataType of ``certificate``; ``issuer`` None: it is a root (its
    own issuer)."""
    digest = ALGORITHMS[algorithm]
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": hashlib.new(digest, certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.new(
            digest, subject_public_key(issuer or certificate)).hexdigest(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


def _serial(text: str) -> str:
    return text.lower().removeprefix("0x").lstrip("0") or "0"


def identity(data: HashData) -> str:
    """One string per certificate and algorithm, however the hex digits are printed."""
    return ":".join((data["hashAlgorithm"], data["issuerNameHash"].lower(),
                     data["issuerKeyHash"].lower(), _serial(data["serialNumber"])))


def same_serial(data: HashData, serial: str) -> bool:
    return _serial(data["serialNumber"]) == _serial(serial)


def installed_entry(pem: str, *, installed_at: Any) -> Entry:
    """The inventory entry of a root certificate GridLink installed."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    data = hash_data(certificate)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {"id": identity(data), "hash_data": data, "pem": pem,
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc,
            "fingerprint": hashlib.sha256(der).hexdigest(),
            "source": "installed", "installed_at": installed_at}


def matches(entry: Entry, wanted: HashData) -> bool | None:
    """Does an inventory entry name the certificate ``wanted`` names? None: cannot tell (it
    was reported with another hash algorithm and GridLink has not the certificate)."""
    known = entry["hash_data"]
    if known["hashAlgorithm"] == wanted["hashAlgorithm"]:
        return identity(known) == identity(wanted)
    if entry.get("pem"):
        certificate = x509.load_pem_x509_certificate(entry["pem"].encode())
        return identity(hash_data(certificate, algorithm=wanted["hashAlgorithm"])) == \
            identity(wanted)
    return None


def merge_reported(known: Iterable[Entry], reported: Iterable[HashData]) -> list[Entry]:
    """A station's inventory of one type after GetInstalledCertificateIds: exactly what it
    reported, keeping what GridLink knew of each of those certificates."""
    known = list(known)
    merged: list[Entry] = []
    for data in reported:
        same = next((e for e in known if matches(e, data)), None)
        entry: Entry = {**same} if same is not None else {"source": "reported"}
        entry.update({"id": identity(data), "hash_data": dict(data)})
        if all(e["id"] != entry["id"] for e in merged):
            merged.append(entry)
    return merged


def delete_refusal(inventories: list[dict[str, Any]], wanted: HashData, station: str
                   ) -> str | None:
    """Why DeleteCertificate must not be sent: GridLink read every type of the station's
    inventory (GetInstalledCertificateIds) and none of its certificates is ``wanted``.
    None when it may hold it, or GridLink cannot tell."""
    complete = {doc["type"] for doc in inventories if doc.get("complete")}
    if not set(CERTIFICATE_TYPES) <= complete:
        return None
    answers = [matches(entry, wanted) for doc in inventories
               for entry in doc.get("certificates", [])]
    if any(answer is not False for answer in answers):
        return None
    return (f"certificateHashData: {station} holds no certificate with serial "
            f"{wanted['serialNumber']} and these hashes (per its last "
            "GetInstalledCertificateIds answers)")


def remaining(entries: Iterable[Entry], deleted: HashData) -> list[Entry]:
    """The entries left once the certificate ``deleted`` names is gone."""
    return [entry for entry in entries if not matches(entry, deleted)]
