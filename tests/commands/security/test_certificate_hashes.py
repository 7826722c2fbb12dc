"""CertificateHashDataType computed as OCSP's CertID (checked against cryptography's own OCSP
request builder), and the inventory arithmetic built on it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from commands.security import certificate_hashes as ch
from services.ocpp16 import utcnow
from tests import pki

OCSP_HASHES = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(),
               "SHA512": hashes.SHA512()}


def ocsp_cert_id(certificate, issuer, algorithm: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """RFC 6960's CertID for ``certificate``, as cryptography builds it for an OCSP
    request: an independent computation of the same hashes."""
    request = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer, OCSP_HASHES[algorithm]).build()
    return {"hashAlgorithm": algorithm, "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(),
            "serialNumber": format(request.serial_number, "x")}


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA384", "SHA512"])
@pytest.mark.parametrize("key", [lambda: pki.ec_key(), lambda: pki.ec_key(ec.SECP384R1()),
                                 lambda: pki.rsa_key(2048)], ids=["P-256", "P-384", "RSA"])
def test_hash_data_is_ocsps_cert_id(algorithm: str, key) -> None:  # type: ignore[no-untyped-def]
    root, root_key = pki.make_ca(key=key())
    assert ch.hash_data(root, algorithm=algorithm) == ocsp_cert_id(root, root, algorithm)
    sub, _ = pki.make_ca("Sub CA", issuer=(root, root_key))
    assert ch.hash_data(sub, root, algorithm) == ocsp_cert_id(sub, root, algorithm)
    assert ch.hash_data(sub, root, algorithm) != ch.hash_data(sub, algorithm=algorithm)


def test_the_serial_is_hex_without_leading_zeros() -> None:
    root, _ = pki.make_ca(serial=0x0ABC)
    assert ch.hash_data(root)["serialNumber"] == "abc"
    assert len(ch.hash_data(root)["issuerNameHash"]) == 64


def entry(pem: str) -> ch.Entry:
    return ch.installed_entry(pem, installed_at=utcnow())


def test_matching_ignores_case_and_leading_zeros_and_recomputes_other_algorithms() -> None:
    root, _ = pki.make_ca()
    installed = entry(pki.pem(root))
    data = ch.hash_data(root)
    shouted = {**data, "issuerNameHash": data["issuerNameHash"].upper(),
               "serialNumber": "000" + data["serialNumber"].upper()}
    assert ch.matches(installed, shouted) is True
    assert ch.matches(installed, ch.hash_data(root, algorithm="SHA512")) is True
    other, _ = pki.make_ca("Other")
    assert ch.matches(installed, ch.hash_data(other)) is False
    reported_only = {"id": ch.identity(data), "hash_data": data, "source": "reported"}
    assert ch.matches(reported_only, ch.hash_data(root, algorithm="SHA384")) is None
    assert ch.matches(reported_only, shouted) is True


def test_a_report_replaces_the_list_and_keeps_what_gridlink_knew() -> None:
    kept, _ = pki.make_ca("Kept")
    gone, _ = pki.make_ca("Gone")
    foreign, _ = pki.make_ca("Foreign")
    known = [entry(pki.pem(kept)), entry(pki.pem(gone))]
    reported = [ch.hash_data(kept, algorithm="SHA384"), ch.hash_data(foreign)]
    merged = ch.merge_reported(known, [*reported, reported[1]])  # a duplicate is one entry
    assert [e["hash_data"] for e in merged] == reported
    assert merged[0]["pem"] == pki.pem(kept) and merged[0]["source"] == "installed"
    assert merged[1]["source"] == "reported" and "pem" not in merged[1]
    assert ch.merge_reported(known, []) == []


def inventory(kind: str, entries: list[ch.Entry], complete: bool = True) -> dict[str, object]:
    return {"type": kind, "certificates": entries, "complete": complete}


def test_delete_is_refused_only_when_gridlink_knows_the_certificate_is_not_there() -> None:
    root, _ = pki.make_ca("Root")
    maker, _ = pki.make_ca("Manufacturer")
    absent, _ = pki.make_ca("Absent")
    wanted = ch.hash_data(absent)
    full = [inventory("CentralSystemRootCertificate", [entry(pki.pem(root))]),
            inventory("ManufacturerRootCertificate", [entry(pki.pem(maker))])]
    assert "holds no certificate with serial" in (ch.delete_refusal(full, wanted, "CP1") or "")
    assert ch.delete_refusal(full, ch.hash_data(maker), "CP1") is None
    # One type never read: GridLink cannot tell.
    assert ch.delete_refusal(full[:1], wanted, "CP1") is None
    partial = [full[0], inventory("ManufacturerRootCertificate", [], complete=False)]
    assert ch.delete_refusal(partial, wanted, "CP1") is None
    # An entry reported with another algorithm, without the certificate: cannot tell.
    data384 = ch.hash_data(maker, algorithm="SHA384")
    opaque = [full[0], inventory("ManufacturerRootCertificate", [
        {"id": ch.identity(data384), "hash_data": data384, "source": "reported"}])]
    assert ch.delete_refusal(opaque, wanted, "CP1") is None
    assert ch.remaining([entry(pki.pem(root)), entry(pki.pem(maker))],
                        ch.hash_data(root))[0]["pem"] == pki.pem(maker)
