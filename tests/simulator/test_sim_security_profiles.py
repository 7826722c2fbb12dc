"""Security profiles end to end: a fleet against the test CSMS over real TLS and HTTP Basic.

Certificates are made in the test (:mod:`sim_pki`): a CA that signs the CSMS's certificate
and the chargers' client certificates, and another CA that the chargers do not trust.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ocpp.v16 import call
from sim_csms import Csms, CsmsChargePoint
from sim_pki import Issued, issue, make_ca, server_context

from simulator import cli
from simulator.fleet import END_STOPPED, Fleet, Unreachable
from simulator.plan import FleetPlan
from simulator.workers import run_in_processes

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pki:
    folder: Path
    ca: Issued  # the chargers trust it; it signs the CSMS's and the chargers' certificates
    ca_file: str
    other_ca: Issued  # nobody trusts it

    def server(self, *, other: bool = False, client_certificates: bool = False) -> ssl.SSLContext:
        """The CSMS's TLS context: a certificate from the CA (or the other one)."""
        ca = self.other_ca if other else self.ca
        return server_context(
            issue(ca, "localhost", server=True),
            self.folder,
            client_ca=self.ca if client_certificates else None,
        )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = make_ca("Sim Test CA")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    return Pki(tmp_path, ca, str(ca_file), make_ca("Sim Other CA"))


def _plan(url: str, **fields: object) -> FleetPlan:
    base = FleetPlan(
        url=url,
        chargers=2,
        profile="idle",
        duration_s=20,
        ramp_s=0,
        id_prefix="TLS",
        validate="all",
        connect_timeout_s=5,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


async def _run_until_accepted(plan: FleetPlan) -> Fleet:
    """Run a fleet until every charger is Accepted (bounded by the plan's duration)."""
    fleet: Fleet

    def stop() -> None:
        fleet.stop()

    fleet = Fleet(plan, on_all_accepted=stop)
    await fleet.run()
    return fleet


async def test_profile_2_wss_with_basic_auth(pki: Pki) -> None:
    passwords = {"TLS1": "pw-TLS1-0123456789", "TLS2": "pw-TLS2-0123456789"}
    async with Csms(tls=pki.server(), passwords=passwords) as csms:
        assert csms.url.startswith("wss://")
        fleet = await _run_until_accepted(
            _plan(csms.url, ca_file=pki.ca_file, password="pw-{id}-0123456789")
        )
    report = fleet.report()
    assert report["boot"]["chargers_accepted"] == 2 and fleet.end_reason == END_STOPPED
    assert report["connections"]["connect_failures"] == {}
    assert csms.authorizations == {"TLS1": [passwords["TLS1"]], "TLS2": [passwords["TLS2"]]}
    assert set(csms.tls_versions) <= {"TLSv1.2", "TLSv1.3"} and csms.tls_versions.total() == 2


async def test_password_file_and_profile_1(pki: Pki, tmp_path: Path) -> None:
    listing = tmp_path / "passwords.txt"
    listing.write_text("# id password\nTLS1 file-password-0001\n\n")
    async with Csms(passwords={"TLS1": "file-password-0001", "TLS2": "template-TLS2"}) as csms:
        plan = _plan(csms.url, password_file=str(listing), password="template-{id}")
        assert plan.security_profile == 1
        fleet = await _run_until_accepted(plan)
    assert fleet.report()["boot"]["chargers_accepted"] == 2
    assert csms.authorizations == {"TLS1": ["file-password-0001"], "TLS2": ["template-TLS2"]}


async def test_a_wrong_password_is_reported_as_http_401(pki: Pki) -> None:
    async with Csms(tls=pki.server(), passwords={"TLS1": "right", "TLS2": "right"}) as csms:
        fleet = Fleet(_plan(csms.url, ca_file=pki.ca_file, password="wrong"))
        with pytest.raises(Unreachable, match="HTTP 401"):
            await fleet.run()
    assert set(fleet.stats.connect_failures) == {"HTTP 401"}
    assert csms.authorizations["TLS1"][0] == "wrong"
    # The charger logged it; not a critical event, so it is not queued to be sent.
    charger = fleet.links[0].charger
    assert [e.type for e in charger.security.log.entries] == ["FailedToAuthenticateAtCentralSystem"]
    assert not charger.queue


async def test_a_server_certificate_from_another_ca_fails_the_handshake(pki: Pki) -> None:
    async with Csms(tls=pki.server(other=True)) as csms:
        fleet = Fleet(_plan(csms.url, ca_file=pki.ca_file))
        with pytest.raises(Unreachable, match="TLS: server certificate not verified"):
            await fleet.run()
        assert csms.connections.total() == 0  # no handshake got as far as HTTP
        # --insecure (test only) connects to the same server.
        insecure = await _run_until_accepted(_plan(csms.url, insecure=True))
    (reason,) = fleet.stats.connect_failures
    assert "unable to get local issuer certificate" in reason
    events = {e.type for e in fleet.links[0].charger.security.log.entries}
    assert events == {"InvalidCentralSystemCertificate"}  # A00.FR.309
    assert insecure.report()["boot"]["chargers_accepted"] == 2


async def test_the_system_store_does_not_trust_a_private_ca(pki: Pki) -> None:
    async with Csms(tls=pki.server()) as csms:
        fleet = Fleet(_plan(csms.url, chargers=1))
        with pytest.raises(Unreachable, match="TLS: server certificate not verified"):
            await fleet.run()


def _client_certificates(pki: Pki, folder: Path, ids: list[str], ca: Issued | None = None) -> None:
    folder.mkdir()
    for charger_id in ids:
        issue(ca or pki.ca, charger_id, organization="Sim CPO").write(folder, charger_id)


async def test_profile_3_client_certificates(pki: Pki) -> None:
    _client_certificates(pki, pki.folder / "chargers", ["TLS1", "TLS2"])
    async with Csms(tls=pki.server(client_certificates=True)) as csms:
        by_dir = _plan(csms.url, ca_file=pki.ca_file, cert_dir=str(pki.folder / "chargers"))
        assert by_dir.security_profile == 3
        fleet = await _run_until_accepted(by_dir)
        by_template = replace(
            by_dir,
            cert_dir=None,
            cert_file=str(pki.folder / "chargers" / "{id}.pem"),
            key_file=str(pki.folder / "chargers" / "{id}.key"),
        )
        again = await _run_until_accepted(by_template)
    assert fleet.report()["boot"]["chargers_accepted"] == 2
    assert again.report()["boot"]["chargers_accepted"] == 2
    assert csms.peer_names == {"TLS1": ["TLS1", "TLS1"], "TLS2": ["TLS2", "TLS2"]}
    assert csms.authorizations == {"TLS1": [None, None], "TLS2": [None, None]}


@pytest.mark.parametrize("certificate", ["none", "other CA", "missing file"])
async def test_profile_3_refusals_are_reported(pki: Pki, certificate: str) -> None:
    folder = pki.folder / "chargers"
    if certificate == "other CA":
        _client_certificates(pki, folder, ["TLS1", "TLS2"], ca=pki.other_ca)
    async with Csms(tls=pki.server(client_certificates=True)) as csms:
        plan = _plan(csms.url, ca_file=pki.ca_file)
        if certificate != "none":
            plan = replace(plan, cert_dir=str(folder))
        fleet = Fleet(plan)
        with pytest.raises(Unreachable) as raised:
            await fleet.run()
    expected = {
        "none": "TLS: closed before the HTTP response (client certificate refused?)",
        "other CA": "TLS: closed before the HTTP response (client certificate refused?)",
        "missing file": "TLS files not loaded (No such file or directory)",
    }[certificate]
    assert str(raised.value).startswith(f"cannot connect to {plan.url}: {expected}")
    assert csms.connections.total() == 0


@contextlib.contextmanager
def _tls11_server(pki: Pki) -> Iterator[int]:
    """A bare TLS server (a thread) that speaks TLS 1.1 at most; its port."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*issue(pki.ca, "localhost", server=True).write(pki.folder, "old"))
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with peer, contextlib.suppress(OSError):
                context.wrap_socket(peer, server_side=True).recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        listener.close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def _old_client_version(port: int, ca_file: str) -> str | None:
    """The version a client that still allows TLS 1.0/1.1 agrees with the server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(ca_file)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version()
    except (OSError, ssl.SSLError):
        return None


async def test_a_server_offering_less_than_tls_1_2_is_refused(pki: Pki) -> None:
    with _tls11_server(pki) as port:
        version = await asyncio.to_thread(_old_client_version, port, pki.ca_file)
        if version != "TLSv1.1":
            pytest.skip(f"this OpenSSL cannot serve TLS 1.1 (got {version})")
        fleet = Fleet(_plan(f"wss://127.0.0.1:{port}/ocpp", chargers=1, ca_file=pki.ca_file))
        with pytest.raises(Unreachable, match="TLS: protocol version refused"):
            await fleet.run()
    # The charger keeps an InvalidTLSVersion event to send once it gets through (A00.FR.315).
    charger = fleet.links[0].charger
    assert [e.type for e in charger.security.log.entries] == ["InvalidTLSVersion"]
    assert [p.action for p in charger.queue] == ["SecurityEventNotification"]


async def _change_password(cp: CsmsChargePoint) -> None:
    """A01: a new AuthorizationKey; the CSMS accepts only the new one from now on."""
    assert cp.csms.passwords is not None
    cp.csms.passwords[cp.id] = "the-new-password-0001"
    reconnected = asyncio.ensure_future(cp.wait_for("BootNotification"))
    result = await cp.call(
        call.ChangeConfiguration(key="AuthorizationKey", value="the-new-password-0001")
    )
    assert result.status == "Accepted"
    await reconnected


async def test_a_new_authorization_key_reconnects_with_it(pki: Pki) -> None:
    async with Csms(
        tls=pki.server(), passwords={"TLS1": "the-old-password-0001"}, script=_change_password
    ) as csms:
        fleet = Fleet(
            _plan(csms.url, chargers=1, ca_file=pki.ca_file, password="the-old-password-0001")
        )
        run = asyncio.ensure_future(fleet.run())
        await asyncio.wait_for(csms.script_done.wait(), timeout=20)
        fleet.stop()
        await run
    assert csms.script_error is None, repr(csms.script_error)
    assert csms.authorizations["TLS1"] == ["the-old-password-0001", "the-new-password-0001"]
    assert fleet.report()["connections"]["disconnects"].get("new password") == 1


async def test_workers_carry_the_security_options(pki: Pki) -> None:
    _client_certificates(pki, pki.folder / "chargers", ["TLS1", "TLS2"])
    async with Csms(
        tls=pki.server(client_certificates=True),
        passwords={"TLS1": "worker-password-1", "TLS2": "worker-password-2"},
    ) as csms:
        plan = _plan(
            csms.url,
            profile="storm",
            ca_file=pki.ca_file,
            cert_dir=str(pki.folder / "chargers"),
            password="worker-password-{n}",
            id_width=1,
        )
        stats = await run_in_processes(plan, workers=2)
    assert len(stats.accepted) == 2 and not stats.connect_failures
    assert csms.peer_names == {"TLS1": ["TLS1"], "TLS2": ["TLS2"]}
    assert csms.authorizations == {"TLS1": ["worker-password-1"], "TLS2": ["worker-password-2"]}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_the_command_line_runs_profile_3_and_checks_its_options(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    _client_certificates(pki, pki.folder / "chargers", ["TLS1", "TLS2"])
    folder = str(pki.folder / "chargers")
    async with Csms(tls=pki.server(client_certificates=True)) as csms:
        common = ("--url", csms.url, "--chargers", "2", "--id-prefix", "TLS", "--json")
        status = await cli.run(
            _args(*common, "--profile", "storm", "--ca-file", pki.ca_file, "--cert-dir", folder)
        )
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert json.loads(captured.out)["boot"]["chargers_accepted"] == 2
        status = await cli.run(
            _args(*common, "--profile", "storm", "--insecure", "--cert-dir", folder)
        )
        captured = capsys.readouterr()
        assert status == 0 and "warning: --insecure" in captured.err
        bad = [
            (("--url", "ws://127.0.0.1:1/ocpp", "--cert-dir", folder), "needs a wss:// URL"),
            (("--insecure", "--ca-file", pki.ca_file), "exclude each other"),
            (("--cert-file", "c.pem"), "--cert-file and --key-file go together"),
            (("--cert-dir", str(pki.folder)), "TLS files not loaded"),
            (("--password-file", str(pki.folder / "none")), "--password-file: No such file"),
        ]
        for extra, message in bad:
            status = await cli.run(_args(*common, *extra))
            err = capsys.readouterr().err
            assert status == 2 and message in err and err.count("\n") == 1, (extra, err)
