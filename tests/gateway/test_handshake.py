"""What the handshake decides before the upgrade: identity, password, subprotocol, refusals.

The pure functions are fed strings; ``Handshake.process_request`` is fed a request and a
stand-in connection whose ``respond`` is websockets' own sans-I/O ``reject``.
"""

from __future__ import annotations

import asyncio
import base64
from http import HTTPStatus

import pytest
from prometheus_client import REGISTRY
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from gateway.handshake import (
    Handshake,
    basic_password,
    choose_subprotocol,
    station_id,
)
from services.envelope import ConnectDecision, ConnectRequest
from services.errors import BusUnavailable
from services.settings import Settings


def basic(user_password: bytes) -> str:
    return "Basic " + base64.b64encode(user_password).decode()


# --- identity from the path -----------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected"), [
    ("/ocpp/CP-1", "CP-1"),
    ("/ocpp/CP%201", "CP 1"),
    ("/ocpp/%C3%A9tienne", "étienne"),
    ("/ocpp/CP%3A1", "CP:1"),
])
def test_identity_is_the_percent_decoded_last_segment(path: str, expected: str) -> None:
    assert station_id(path, 48) == expected


def test_identity_length_limit_counts_decoded_characters() -> None:
    assert station_id("/ocpp/" + "a" * 10, 10) == "a" * 10
    assert station_id("/ocpp/" + "a" * 11, 10) is None
    assert station_id("/ocpp/" + "%C3%A9" * 10, 10) == "é" * 10  # 60 characters encoded


@pytest.mark.parametrize("path", [
    "/ocpp/",  # empty
    "/ocpp/a/b",  # nested
    "/ocpp/a/",
    "/other/CP-1",  # not under /ocpp/
    "/ocppCP-1",
])
def test_identity_missing_or_nested_is_refused(path: str) -> None:
    assert station_id(path, 48) is None


@pytest.mark.parametrize("segment", [
    "CP%00", "CP%0A1", "%1F", "CP%091",  # control characters
    "CP%2F1",  # an encoded '/'
    "CP%5C1", "CP\\1",  # '\'
    "CP%231",  # '#'
])
def test_identity_with_forbidden_characters_is_refused(segment: str) -> None:
    assert station_id("/ocpp/" + segment, 48) is None


@pytest.mark.parametrize("segment", ["%FF", "CP%C3", "%C3%28", "%80abc"])
def test_identity_with_escapes_that_are_not_utf8_is_refused(segment: str) -> None:
    assert station_id("/ocpp/" + segment, 48) is None


# --- HTTP Basic password --------------------------------------------------------------------

def test_password_of_the_station() -> None:
    assert basic_password(basic(b"CP-1:s3cret"), "CP-1") == "s3cret"


def test_scheme_is_case_insensitive() -> None:
    assert basic_password("basic " + base64.b64encode(b"CP-1:pw").decode(), "CP-1") == "pw"
    assert basic_password("BASIC " + base64.b64encode(b"CP-1:pw").decode(), "CP-1") == "pw"


def test_password_may_hold_colons() -> None:
    assert basic_password(basic(b"CP-1:a:b::c"), "CP-1") == "a:b::c"


def test_password_of_another_user_is_ignored() -> None:
    assert basic_password(basic(b"CP-2:s3cret"), "CP-1") is None
    assert basic_password(basic(b"cp-1:s3cret"), "CP-1") is None  # user is case-sensitive


@pytest.mark.parametrize("header", [
    None, "", "Bearer abc", "Digest username=CP-1", "Basic",
    "Basic" + base64.b64encode(b"CP-1:pw").decode(),  # no space after the scheme
])
def test_no_basic_header_no_password(header: str | None) -> None:
    assert basic_password(header, "CP-1") is None


@pytest.mark.parametrize("header", [
    "Basic abc",  # bad padding
    "Basic " + base64.b64encode(b"CP-1:\xff\xfe").decode(),  # not UTF-8
])
def test_undecodable_basic_header_no_password(header: str) -> None:
    assert basic_password(header, "CP-1") is None


def test_utf8_identity_and_password() -> None:
    assert basic_password(basic("étienne:mot de passé".encode()), "étienne") == "mot de passé"


# --- subprotocol ----------------------------------------------------------------------------

@pytest.mark.parametrize(("offered", "expected"), [
    (["ocpp1.6"], "ocpp1.6"),
    (["ocpp2.0.1", "ocpp1.6"], "ocpp1.6"),
    (["ocpp2.0.1"], None),
    (["OCPP1.6"], None),
    ([], None),
])
def test_subprotocol_is_ocpp16_when_offered(offered: list[str], expected: str | None) -> None:
    assert choose_subprotocol(offered) == expected


# --- process_request ------------------------------------------------------------------------

class Transport:
    def __init__(self, ssl_object: object | None) -> None:
        self.ssl_object = ssl_object

    def get_extra_info(self, name: str) -> object | None:
        return self.ssl_object if name == "ssl_object" else None


class StandIn:
    """The part of a ServerConnection that process_request uses."""

    def __init__(self, remote: str = "192.0.2.10", ssl_object: object | None = None) -> None:
        self.protocol = ServerProtocol()
        self.remote_address = (remote, 40000)
        self.transport = Transport(ssl_object)

    def respond(self, status: HTTPStatus, text: str) -> Response:
        return self.protocol.reject(status, text)


class Authz:
    """Answers admission questions with ``decision``, or raises ``error``."""

    def __init__(self, decision: ConnectDecision | None = None,
                 error: Exception | None = None) -> None:
        self.decision = decision or ConnectDecision(accept=True)
        self.error = error
        self.asked: list[tuple[ConnectRequest, float]] = []

    async def ask_connect(self, request: ConnectRequest, wait_s: float) -> ConnectDecision:
        self.asked.append((request, wait_s))
        if self.error is not None:
            raise self.error
        return self.decision


def handshake(authz: Authz, *, ready: tuple[bool, str] = (True, "ready"),
              draining: bool = False, metrics_port: int = 0, live: int | None = None,
              **settings: object) -> Handshake:
    configured = Settings(gateway_metrics_port=metrics_port, max_station_id_length=48,
                          connect_timeout_s=1.5, **settings)  # type: ignore[arg-type]
    return Handshake(configured, readiness=lambda: ready, draining=lambda: draining,
                     ask_connect=authz.ask_connect, live_profile=lambda station: live)


async def answer(hs: Handshake, path: str, *headers: tuple[str, str],
                 connection: StandIn | None = None) -> Response | None:
    return await hs.process_request(connection or StandIn(),  # type: ignore[arg-type]
                                    Request(path, Headers(list(headers))))


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("gridlink_gateway_handshakes_refused_total",
                                     {"reason": reason}) or 0.0


async def test_probes_are_answered_without_asking_authz() -> None:
    authz = Authz()
    hs = handshake(authz, ready=(False, "draining"))
    healthz = await answer(hs, "/healthz")
    readyz = await answer(hs, "/readyz?verbose=1")
    assert healthz is not None and (healthz.status_code, healthz.body) == (200, b"ok\n")
    assert readyz is not None and (readyz.status_code, readyz.body) == (503, b"draining\n")
    assert authz.asked == []


async def test_metrics_stay_off_the_ocpp_port_unless_it_is_asked_for() -> None:
    assert Settings().gateway_probe_port == Settings().http_port  # by default: not public
    here = await answer(handshake(Authz()), "/metrics")
    assert here is not None and here.status_code == 200
    assert b"gridlink_gateway_handshakes_refused_total" in here.body
    elsewhere = await answer(handshake(Authz(), metrics_port=9464), "/metrics")
    assert elsewhere is not None and elsewhere.status_code == 404


async def test_path_outside_ocpp_is_404_and_counted() -> None:
    before = refused("not_found")
    response = await answer(handshake(Authz()), "/chargers/CP-1")
    assert response is not None and (response.status_code, response.body) == (404,
                                                                               b"not found\n")
    assert refused("not_found") == before + 1


@pytest.mark.parametrize(("draining", "reason"), [(True, "draining"),
                                                   (False, "backend_unavailable")])
async def test_not_ready_is_503_with_the_reason(draining: bool, reason: str) -> None:
    authz = Authz()
    before = refused(reason)
    response = await answer(handshake(authz, ready=(False, "why not"), draining=draining),
                            "/ocpp/CP-1")
    assert response is not None and (response.status_code, response.body) == (503,
                                                                               b"why not\n")
    assert refused(reason) == before + 1
    assert authz.asked == []


async def test_bad_identity_is_400() -> None:
    authz = Authz()
    before = refused("bad_identity")
    response = await answer(handshake(authz), "/ocpp/CP%2F1")
    assert response is not None and response.status_code == 400
    assert response.body == b"invalid charge point identity\n"
    assert refused("bad_identity") == before + 1
    assert authz.asked == []


async def test_admitted_station_goes_on_with_its_password() -> None:
    authz = Authz()
    response = await answer(handshake(authz), "/ocpp/CP%201?x=y",
                            ("Authorization", basic(b"CP 1:pw")))
    assert response is None
    assert authz.asked == [(ConnectRequest(station="CP 1", password="pw", peer="192.0.2.10"),
                            1.5)]


async def test_unauthorized_is_401_with_www_authenticate() -> None:
    authz = Authz(ConnectDecision(accept=False, status=401, reason="bad_password"))
    before = refused("bad_password")
    response = await answer(handshake(authz), "/ocpp/CP-1")
    assert response is not None and response.status_code == 401
    assert response.body == b"unauthorized\n"  # whatever the reason
    assert response.headers["WWW-Authenticate"] == 'Basic realm="GridLink", charset="UTF-8"'
    assert refused("bad_password") == before + 1


async def test_unknown_station_is_404_without_www_authenticate() -> None:
    authz = Authz(ConnectDecision(accept=False, status=404, reason="unknown_station"))
    response = await answer(handshake(authz), "/ocpp/CP-1")
    assert response is not None and response.status_code == 404
    assert response.body == b"unknown station\n"
    assert "WWW-Authenticate" not in response.headers


async def test_authz_not_answering_is_503() -> None:
    authz = Authz(error=BusUnavailable("nobody answered"))
    before = refused("backend_unavailable")
    response = await answer(handshake(authz), "/ocpp/CP-1")
    assert response is not None and (response.status_code, response.body) == (
        503, b"try again later\n")
    assert refused("backend_unavailable") == before + 1



# --- security: credentials, transport, peers ---------------------------------------------------

def test_a_station_id_holding_a_colon_can_authenticate() -> None:
    assert basic_password(basic(b"CP:1:the-key"), "CP:1") == "the-key"
    # for station "CP" the same header is user CP with password "1:the-key" (RFC 7617)
    assert basic_password(basic(b"CP:1:the-key"), "CP") == "1:the-key"


def test_a_header_that_is_not_ascii_is_no_password() -> None:
    assert basic_password("Basic \u00e9t\u00e9", "CP-1") is None


def test_delete_is_a_control_character_in_an_identity() -> None:
    assert station_id("/ocpp/CP%7F1", 48) is None


async def test_two_authorization_headers_are_a_bad_request() -> None:
    authz = Authz()
    response = await answer(handshake(authz), "/ocpp/CP-1",
                            ("Authorization", basic(b"CP-1:a")),
                            ("Authorization", basic(b"CP-1:b")))
    assert response is not None and response.status_code == 400
    assert authz.asked == []


async def test_a_lockout_is_429_with_retry_after() -> None:
    authz = Authz(ConnectDecision(accept=False, status=429, reason="locked_out", retry_after=42))
    response = await answer(handshake(authz), "/ocpp/CP-1")
    assert response is not None and response.status_code == 429
    assert response.headers["Retry-After"] == "42"


async def test_a_weaker_login_does_not_replace_a_stronger_live_connection() -> None:
    weaker = Authz(ConnectDecision(accept=True, profile=0))
    response = await answer(handshake(weaker, live=2), "/ocpp/CP-1")
    assert response is not None and response.status_code == 409
    stronger = Authz(ConnectDecision(accept=True, profile=2))
    assert await answer(handshake(stronger, live=2), "/ocpp/CP-1") is None


async def test_a_backlog_at_its_bound_is_503_with_retry_after_and_authz_is_not_asked() -> None:
    authz = Authz()
    hs = handshake(authz, gateway_max_backlog=2)
    hs.backlog.call_sent("session-a", "1")
    assert await answer(hs, "/ocpp/CP-1") is None  # one call in flight: admitted
    hs.backlog.call_sent("session-b", "7")
    before = refused("overloaded")
    response = await answer(hs, "/ocpp/CP-2")
    assert response is not None and response.status_code == 503
    assert 2 <= int(response.headers["Retry-After"]) <= 10
    assert refused("overloaded") == before + 1
    assert [asked.station for asked, _ in authz.asked] == ["CP-1"]
    hs.backlog.call_answered("session-b", "7")
    assert await answer(hs, "/ocpp/CP-2") is None  # answered: room again


async def test_handshakes_waiting_for_authz_count_in_the_backlog() -> None:
    release, asked = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def slow_authz(request: ConnectRequest, wait_s: float) -> ConnectDecision:
        seen.append(hs.backlog.size())
        asked.set()
        await release.wait()
        return ConnectDecision(accept=True)

    configured = Settings(gateway_max_backlog=1)
    hs = Handshake(configured, readiness=lambda: (True, "ready"), draining=lambda: False,
                   ask_connect=slow_authz)
    first = asyncio.ensure_future(answer(hs, "/ocpp/CP-1"))
    await asked.wait()
    second = await answer(hs, "/ocpp/CP-2")  # CP-1 is still being admitted
    assert second is not None and second.status_code == 503
    release.set()
    assert await first is None
    assert (seen, hs.backlog.size()) == ([1], 0)


async def test_the_decision_waits_for_the_connection_handler() -> None:
    decision = ConnectDecision(accept=True, profile=1, registration="Pending")
    hs = handshake(Authz(decision))
    connection = StandIn()
    assert await answer(hs, "/ocpp/CP-1", connection=connection) is None
    assert hs.admitted[connection] == decision  # type: ignore[index]


FORWARDED = (("X-Forwarded-For", "198.51.100.23, 10.0.0.7"), ("X-Forwarded-Proto", "https"),
             ("X-Forwarded-Client-Cert", "not%20a%20certificate"))


async def test_forwarded_headers_of_an_untrusted_peer_are_ignored() -> None:
    authz = Authz()
    hs = handshake(authz, tls_trusted_proxies=["10.0.0.0/8"])
    assert await answer(hs, "/ocpp/CP-1", *FORWARDED,
                        connection=StandIn(remote="203.0.113.5")) is None
    [(asked, _)] = authz.asked
    assert (asked.peer, asked.tls, asked.certificate) == ("203.0.113.5", False, None)


async def test_a_trusted_proxy_gives_the_peer_and_tls_and_a_bad_certificate_is_refused() -> None:
    authz = Authz()
    hs = handshake(authz, tls_trusted_proxies=["10.0.0.0/8"])
    plain = await answer(hs, "/ocpp/CP-1", *FORWARDED[:2], connection=StandIn(remote="10.1.2.3"))
    assert plain is None
    [(asked, _)] = authz.asked
    assert (asked.peer, asked.tls) == ("198.51.100.23", True)
    refused_here = await answer(hs, "/ocpp/CP-1", *FORWARDED,
                                connection=StandIn(remote="10.1.2.3"))
    assert refused_here is not None and refused_here.status_code == 401
    assert len(authz.asked) == 1  # authz never heard of the unverifiable certificate
