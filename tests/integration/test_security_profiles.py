"""Security profiles 0-3 over real sockets: a gateway serving wss:// with a client CA, and a
plain one behind a "load balancer" that ends TLS (trusted at 127.0.0.2). Certificates are
made in the test session (:mod:`tests.certificates`); profile 0 is off, as in production.

Each profile is accepted with the right credentials and refused before the upgrade with each
wrong one; hijacks, lockouts, the registration gate across reconnects, TLS versions,
certificate rotation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from services import security_events, stations
from services.ocpp16 import utcnow
from tests.certificates import ORGANIZATION, Pki, escaped_pem
from tests.charger import Charger
from tests.helpers import delete_namespace
from tests.processes import Process, Stack, free_port, metric_value, wait_for

KEY = "a-station-key-0123456789"
PROXY = "127.0.0.2"  # the trusted load balancer's address (any 127/8 address is local)


@dataclass
class Secure:
    stack: Stack
    pki: Pki
    tls_gateway: Process  # wss:// with client certificates
    plain_gateway: Process  # ws:// behind a TLS-terminating proxy

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.tls_gateway.port}/ocpp"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.plain_gateway.port}/ocpp"

    async def add(self, station: str, profile: int, *, password: str | None = None,
                  registration: str = "Accepted", certificate_cn: str | None = None) -> None:
        await stations.add_station(self.stack.db(), station, registration=registration,
                                   password=password, now=utcnow(), security_profile=profile,
                                   certificate_cn=certificate_cn)


@pytest.fixture(scope="module")
async def secure(amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Secure]:
    pki = Pki(Path(tmp_path_factory.mktemp("pki")))
    namespace = f"glsec-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"),
                  logs=Path(tmp_path_factory.mktemp("secure-logs")), extra_env={
                      "GRIDLINK_ALLOW_SECURITY_PROFILE_0": "false",
                      "GRIDLINK_TLS_CLIENT_ORGANIZATIONS": json.dumps([ORGANIZATION]),
                      "GRIDLINK_TLS_CLIENT_CA_FILE": str(pki.charger_ca.cert),
                      "GRIDLINK_AUTH_FAILURES_PER_STATION": "3",
                      "GRIDLINK_AUTH_FAILURES_PER_PEER": "1000",
                      # chargers are told to use wss://: the commands service allows
                      # upgrades to profile 2 and 3 (it holds no certificate itself)
                      "GRIDLINK_PUBLIC_URL": "wss://127.0.0.1/ocpp",
                  })
    try:
        await stack.start_services()
        tls_gateway = await stack.start_gateway(tls_cert_file=str(pki.server.cert),
                                                tls_key_file=str(pki.server.key))
        plain_gateway = stack.spawn("gateway", tls_trusted_proxies=json.dumps([PROXY]))
        await stack.wait_ready(plain_gateway)
        stack.gateways.append(plain_gateway)
        yield Secure(stack, pki, tls_gateway, plain_gateway)
    finally:
        await stack.stop()
        await delete_namespace(amqp_url, namespace)


def basic(station: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def attempt(url: str, station: str, **options: Any) -> int:
    """The HTTP status of a handshake (101 when upgraded)."""
    try:
        async with connect(f"{url}/{station}", subprotocols=["ocpp1.6"], open_timeout=10,
                           **options):  # type: ignore[arg-type]
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- each profile, right and wrong -----------------------------------------------------------


async def test_profile_1_needs_its_key(secure: Secure) -> None:
    station = new_id("P1")
    await secure.add(station, 1, password=KEY)
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 101
    # the same key over TLS is profile 2: another profile than the station's (A00.FR.002)
    assert await attempt(secure.wss, station, additional_headers=basic(station, KEY),
                         ssl=secure.pki.client_context()) == 401
    for headers in ({}, basic(station, "wrong-key-0123456789"), basic("other", KEY)):
        assert await attempt(secure.ws, station, additional_headers=headers) == 401


async def test_profile_2_needs_its_key_over_tls(secure: Secure) -> None:
    station = new_id("P2")
    await secure.add(station, 2, password=KEY)
    context = secure.pki.client_context()
    assert await attempt(secure.wss, station, additional_headers=basic(station, KEY),
                         ssl=context) == 101
    assert await attempt(secure.wss, station, ssl=context) == 401
    assert await attempt(secure.wss, station, ssl=context,
                         additional_headers=basic(station, "wrong-key-0123456789")) == 401
    # the right key without TLS is a lower profile: refused, and a security event
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 401
    events = await security_events.list_rows(secure.stack.db(), station)
    assert sorted(e["type"] for e in events) == ["InvalidChargePointCredentials",
                                                 "SecurityProfileTooLow"]


async def test_profile_3_needs_a_certificate_of_the_station(secure: Secure) -> None:
    station = new_id("P3")
    await secure.add(station, 3)
    pki = secure.pki
    good = pki.client_context(pki.client(station))
    assert await attempt(secure.wss, station, ssl=good) == 101
    refused = {
        "no certificate": pki.client_context(),
        "CN of another station": pki.client_context(pki.client("someone-else")),
        "O of another CPO": pki.client_context(pki.client(station, "Another CPO")),
    }
    for why, context in refused.items():
        assert await attempt(secure.wss, station, ssl=context) == 401, why
    # Basic over TLS is profile 2: lower than the station's
    assert await attempt(secure.wss, station, ssl=pki.client_context(),
                         additional_headers=basic(station, KEY)) == 401
    kinds = {e["type"] for e in await security_events.list_rows(secure.stack.db(), station)}
    assert {"InvalidChargePointCertificate", "SecurityProfileTooLow"} <= kinds


async def test_the_certificate_identity_can_differ_from_the_id(secure: Secure) -> None:
    station = new_id("P3")
    await secure.add(station, 3, certificate_cn=f"{station}.chargers.example")
    pki = secure.pki
    assert await attempt(secure.wss, station, ssl=pki.client_context(
        pki.client(f"{station}.chargers.example"))) == 101
    assert await attempt(secure.wss, station, ssl=pki.client_context(pki.client(station))) == 401


async def test_a_certificate_of_another_ca_or_an_old_tls_fails_the_tls_handshake(
        secure: Secure) -> None:
    station = new_id("P3")
    await secure.add(station, 3)
    pki, metrics = secure.pki, secure.tls_gateway.url("/metrics",
                                                      secure.tls_gateway.metrics_port)
    samples = [f'gridlink_gateway_tls_handshake_failures_total{{reason="{reason}"}}'
               for reason in ("client_certificate", "protocol_version")]
    before = [await metric_value(metrics, sample) or 0 for sample in samples]

    stranger = pki.client_context(pki.client(station, stranger=True))
    # TLS 1.3: the client hears of the refusal after its side of the handshake, as a close
    with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
        await attempt(secure.wss, station, ssl=stranger)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old = pki.client_context(pki.client(station), maximum=ssl.TLSVersion.TLSv1_1,
                                 minimum=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await attempt(secure.wss, station, ssl=old)

    async def counted() -> bool:
        now = [await metric_value(metrics, sample) or 0 for sample in samples]
        return all(after >= earlier + 1 for after, earlier in zip(now, before, strict=True))

    await wait_for(counted, what="both failed handshakes counted by reason")


async def test_a_station_of_profile_0_cannot_connect_where_profile_0_is_off(
        secure: Secure) -> None:
    station = new_id("P0")
    await secure.add(station, 0)
    assert await attempt(secure.ws, station) == 401
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 401
    unknown = await attempt(secure.ws, new_id("NOBODY"))  # the same answer: no enumeration
    assert unknown == 401


# --- hijacks and lockouts ----------------------------------------------------------------------


async def test_a_hijacker_neither_connects_nor_disconnects_the_station(secure: Secure) -> None:
    station = new_id("P1")
    await secure.add(station, 1, password=KEY)
    async with Charger.connect(secure.ws, station,
                               additional_headers=basic(station, KEY)) as real:
        assert (await real.boot())["status"] == "Accepted"
        for headers in ({}, basic(station, "garbage-garbage-garbage")):
            assert await attempt(secure.ws, station, additional_headers=headers) == 401
        heartbeat = await real.call("Heartbeat", {})
        assert heartbeat[0] == 3  # still connected and answered


async def test_repeated_failures_lock_out_new_logins_but_not_the_real_charger(
        secure: Secure) -> None:
    station = new_id("P1")
    await secure.add(station, 1, password=KEY)
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 101
    codes = [await attempt(secure.ws, station,
                           additional_headers=basic(station, f"guess-{n:016d}"))
             for n in range(4)]
    assert codes == [401, 401, 401, 429]
    # the key seen right before passes; a guess is not even checked
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 101
    assert await attempt(secure.ws, station,
                         additional_headers=basic(station, "one-more-guess-0123")) == 429
    kinds = [e["type"] for e in await security_events.list_rows(secure.stack.db(), station)]
    assert "ChargePointLockedOut" in kinds


# --- the registration gate ---------------------------------------------------------------------


@pytest.mark.parametrize("registration", ["Rejected", "Pending"])
async def test_a_station_not_accepted_may_only_boot_on_every_connection(
        secure: Secure, registration: str) -> None:
    station = new_id("GATE")
    await secure.add(station, 1, password=KEY, registration=registration)
    for _ in range(2):  # and again after a reconnect
        async with Charger.connect(secure.ws, station,
                                   additional_headers=basic(station, KEY)) as charger:
            for action, payload in (("Authorize", {"idTag": "TAG"}),
                                    ("StartTransaction", {"connectorId": 1, "idTag": "TAG",
                                                          "meterStart": 0,
                                                          "timestamp": utcnow().isoformat()})):
                answer = await charger.call(action, payload)
                assert (answer[0], answer[2]) == (4, "SecurityError"), answer
            assert (await charger.boot())["status"] == registration
    assert await secure.stack.db().transactions.count_documents({"station": station}) == 0


# --- TLS at a load balancer ---------------------------------------------------------------------


async def test_a_trusted_proxy_forwards_the_certificate_and_nobody_else_can(
        secure: Secure) -> None:
    station = new_id("P3")
    await secure.add(station, 3)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.40",
                 "X-Forwarded-Client-Cert": escaped_pem(secure.pki.client(station))}
    assert await attempt(secure.ws, station, additional_headers=forwarded,
                         local_addr=(PROXY, 0)) == 101
    assert await attempt(secure.ws, station, additional_headers=forwarded) == 401  # not a proxy
    stranger = {**forwarded, "X-Forwarded-Client-Cert": escaped_pem(secure.pki.client(
        station, stranger=True))}
    assert await attempt(secure.ws, station, additional_headers=stranger,
                         local_addr=(PROXY, 0)) == 401  # verified again against the CA
    events = await security_events.list_rows(secure.stack.db(), station)
    assert all(e["peer"] != PROXY for e in events)  # the charger's address, not the proxy's


async def test_a_profile_2_station_behind_the_proxy(secure: Secure) -> None:
    station = new_id("P2")
    await secure.add(station, 2, password=KEY)
    headers = {**basic(station, KEY), "X-Forwarded-Proto": "https"}
    assert await attempt(secure.ws, station, additional_headers=headers,
                         local_addr=(PROXY, 0)) == 101
    assert await attempt(secure.ws, station, additional_headers=headers) == 401


# --- the gateway's own certificate --------------------------------------------------------------


async def test_a_rotated_server_certificate_is_served_without_a_restart(
        secure: Secure, tmp_path: Path) -> None:
    pki = secure.pki
    port = free_port()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    gateway = secure.stack.spawn("gateway", gateway_port=port, tls_cert_file=str(cert),
                                 tls_key_file=str(key))
    try:
        await secure.stack.wait_ready(gateway)
        station = new_id("P2")
        await secure.add(station, 2, password=KEY)

        async def served_serial() -> int:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.client_context(), server_hostname="127.0.0.1")
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            from cryptography import x509
            return x509.load_der_x509_certificate(der).serial_number

        assert await served_serial() == pki.server.certificate.serial_number
        rotated = pki.server_copy("rotated")
        key.write_bytes(rotated.key.read_bytes())
        cert.write_bytes(rotated.cert.read_bytes())

        async def rotated_in() -> bool:
            return await served_serial() == rotated.certificate.serial_number

        await wait_for(rotated_in, timeout=20, what="the rotated certificate served")
        assert await attempt(f"wss://127.0.0.1:{port}/ocpp", station,
                             additional_headers=basic(station, KEY),
                             ssl=pki.client_context()) == 101
    finally:
        assert await secure.stack.stop_process(gateway) == 0


# --- changed over OCPP: the key (A01) and the profile (A05) --------------------------------------


async def change_configuration(secure: Secure, charger: Charger, station: str, key: str,
                               value: str, answer: str = "Accepted") -> dict[str, Any]:
    process = await secure.stack.start_cli("command", station, "ChangeConfiguration",
                                           json.dumps({"key": key, "value": value}))
    frame = await charger.next_csms_call(timeout=20)
    assert frame[2:] == ["ChangeConfiguration", {"key": key, "value": value}]
    await charger.answer([3, frame[1], {"status": answer}])
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert out, err
    return dict(json.loads(out))


async def test_a_new_authorization_key_replaces_the_old_one(secure: Secure) -> None:
    station = new_id("A01")
    await secure.add(station, 1, password=KEY)
    new = "new-station-key-" + uuid.uuid4().hex[:16]
    async with Charger.connect(secure.ws, station,
                               additional_headers=basic(station, KEY)) as charger:
        await charger.boot()
        refused = await change_configuration(secure, charger, station, "AuthorizationKey",
                                             "another-key-0123456789", answer="Rejected")
        assert refused == {"status": "Rejected"}
        assert await attempt(secure.ws, station, additional_headers=basic(
            station, "another-key-0123456789")) == 401  # A01.FR.04: nothing changed
    async with Charger.connect(secure.ws, station,
                               additional_headers=basic(station, KEY)) as charger:
        await charger.boot()
        assert (await change_configuration(secure, charger, station, "AuthorizationKey",
                                           new)) == {"status": "Accepted"}
    # the old key works during its grace, until the charger has used the new one
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 101
    assert await attempt(secure.ws, station, additional_headers=basic(station, new)) == 101
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 401


async def test_a_profile_upgrade_applies_from_the_connection_that_meets_it(
        secure: Secure) -> None:
    station = new_id("A05")
    await secure.add(station, 1, password=KEY)
    context = secure.pki.client_context()
    async with Charger.connect(secure.ws, station,
                               additional_headers=basic(station, KEY)) as charger:
        await charger.boot()
        assert (await change_configuration(secure, charger, station, "SecurityProfile",
                                           "2")) == {"status": "Accepted"}
    # until the charger manages the new profile it may fall back (A05.FR.08) ...
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 101
    assert await attempt(secure.wss, station, additional_headers=basic(station, KEY),
                         ssl=context) == 101
    # ... and from then on profile 2 is the station's: never lower again
    assert await attempt(secure.ws, station, additional_headers=basic(station, KEY)) == 401
    document = await secure.stack.db().stations.find_one({"_id": station})
    assert document["security_profile"] == 2 and "next_profile" not in document
