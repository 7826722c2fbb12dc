"""HAProxy in the compose cluster: WebSockets balanced over every gateway, file transfers to
the commands file server, nothing else reaches GridLink; checked with `haproxy -c` and a
real HAProxy in front of recording backends."""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy import sources
from tests.deploy.sources import COMPOSE_COMPONENTS
from tests.processes import free_port


def haproxy_sections(config: str) -> dict[str, list[str]]:
    """"frontend ocpp" -> its lines (stripped, comments dropped), for every section."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in config.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("log-format") \
            else raw.strip()
        if not line:
            continue
        if not raw[0].isspace():
            current = sections.setdefault(line, [])
        else:
            current.append(line)
    return sections


def directive(lines: list[str], name: str) -> list[str]:
    """The arguments of every ``name ...`` line of a section."""
    return [line[len(name):].strip() for line in lines
            if line == name or line.startswith(name + " ")]


def backend_servers(sections: dict[str, list[str]], backend: str) -> dict[str, str]:
    return dict(s.split()[:2] for s in directive(sections[f"backend {backend}"], "server"))


def files_public_url() -> str:
    urls = {sources.compose_env(s).get("GRIDLINK_FILES_PUBLIC_URL") for s in COMPOSE_COMPONENTS}
    assert len(urls) == 1, f"every process (and admin command) needs the same URL: {urls}"
    url = urls.pop()
    assert url, "GRIDLINK_FILES_PUBLIC_URL is not set"
    return url


def test_haproxy_balances_websockets_over_every_gateway() -> None:
    config = sources.haproxy_config()
    sections = haproxy_sections(config)
    gateways = {s for s, c in COMPOSE_COMPONENTS.items() if c == "gateway"}
    servers = backend_servers(sections, "gateways")
    assert set(servers) == gateways
    for service, address in servers.items():
        port = sources.compose_env(service)["GRIDLINK_GATEWAY_PORT"]
        assert address == f"{service}:{port}"
    backend = sections["backend gateways"]
    assert directive(backend, "balance") == ["leastconn"]
    assert directive(backend, "option httpchk") == ["GET /readyz"]
    found = re.search(r"^\s*timeout\s+tunnel\s+(\S+)$", config, re.M)
    assert found is not None, "no timeout tunnel"
    tunnel = sources.parse_duration(found.group(1))
    from services.settings import Settings

    assert tunnel > 2 * float(Settings.model_fields["ping_interval_s"].default)
    frontend = sections["frontend ocpp"]
    assert directive(frontend, "bind") == [":9000"]
    assert directive(frontend, "default_backend") == ["gateways"]
    assert directive(frontend, "http-request") == [
        "deny deny_status 404 unless { path_beg /ocpp/ }"]
    assert "9000:9000" in sources.compose_services()["haproxy"]["ports"]


def test_haproxy_routes_file_transfers_to_the_commands_file_server() -> None:
    sections = haproxy_sections(sources.haproxy_config())
    url = urlsplit(files_public_url())
    # Chargers are sent to the files frontend; nothing rewrites paths on the way.
    assert url.scheme == "http" and url.hostname == "localhost" and url.path in ("", "/")
    frontend = sections["frontend files"]
    assert directive(frontend, "bind") == [f":{url.port}"]
    assert f"{url.port}:{url.port}" in sources.compose_services()["haproxy"]["ports"]
    assert directive(frontend, "default_backend") == ["files"]
    assert directive(frontend, "http-request") == [
        "deny deny_status 404 unless { path_beg /diagnostics/ /firmware/ }"]
    # Upload URLs carry their token: the log line has no URL (%r, %HU, %HP, %HPO, %HQ).
    (log_format,) = directive(frontend, "log-format")
    assert not re.search(r"%(\{[^}]*\})?(r|HU|HP|HPO|HQ)\b", log_format), log_format
    # Slow chargers: minutes of patience either way.
    assert sources.parse_duration(directive(frontend, "timeout client")[0]) >= 300
    backend = sections["backend files"]
    assert sources.parse_duration(directive(backend, "timeout server")[0]) >= 300
    # ... to the commands service's file server, while it is ready.
    commands = sources.compose_env("commands")
    assert backend_servers(sections, "files") == {
        "commands": f"commands:{sources.port_setting(commands, 'GRIDLINK_FILES_PORT')}"}
    assert directive(backend, "option httpchk") == ["GET /readyz"]
    (defaults,) = directive(backend, "default-server")
    assert re.search(rf"\bcheck port {commands['GRIDLINK_HTTP_PORT']}\b", defaults)
    assert sources.compose_services()["haproxy"]["depends_on"] == [
        "gateway-1", "gateway-2", "commands"]


def test_haproxy_accepts_its_configuration() -> None:
    result = subprocess.run(
        [haproxy_executable(), "-c", "-f", str(sources.DEPLOY / "haproxy" / "haproxy.cfg")],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "could not resolve" not in result.stderr.replace("could not resolve address", "")


def haproxy_executable() -> str:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed: apt-get install -y --no-install-recommends haproxy")
    return haproxy


class _Backend(ThreadingHTTPServer):
    """Stands in for a gateway or the commands service: answers 200 with its name, and
    records every request but HAProxy's health checks."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.name = name
        self.requests: list[tuple[str, str, dict[str, str], int]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # HAProxy's health checks hang up without a word: nothing to report


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Backend

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path != "/readyz":
            self.server.requests.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                 len(body)))
        reply = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


def local_haproxy_config(config: str, binds: dict[str, int], servers: dict[str, int],
                         check_ports: dict[str, int]) -> str:
    """The compose configuration on this machine: every ``bind :PORT`` on 127.0.0.1 and a
    port of the test's, every server (and health-check port) at a local stand-in, and a
    maxconn a test process's file descriptor limit allows."""
    def bind(match: re.Match[str]) -> str:
        return f"bind 127.0.0.1:{binds[match.group(1)]}"

    def server(match: re.Match[str]) -> str:
        return f"server {match.group(1)} 127.0.0.1:{servers[match.group(1)]}"

    def check_port(match: re.Match[str]) -> str:
        return f"check port {check_ports[match.group(1)]}"

    local, binds_done = re.subn(r"\bbind :(\d+)\b", bind, config)
    local, servers_done = re.subn(r"\bserver (\S+) \S+:\d+", server, local)
    local, _ = re.subn(r"\bcheck port (\d+)\b", check_port, local)
    local = re.sub(r"^(\s*maxconn)\s+\d+$", r"\1 100", local, flags=re.M)
    assert binds_done == len(binds) and servers_done == len(servers)
    return local


def _request(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_haproxy_routes_chargers_and_nothing_else(tmp_path: Path) -> None:
    """The real HAProxy with the compose configuration, in front of stand-ins: chargers'
    WebSockets reach the gateways, their file transfers the commands service, and nothing
    else gets through (in particular not the gateways' or services' /metrics and probes)."""
    config = sources.haproxy_config()
    sections = haproxy_sections(config)
    gateways = {name: _Backend(name) for name in backend_servers(sections, "gateways")}
    commands = _Backend("commands")
    stand_ins = [*gateways.values(), commands]
    ocpp_port, files_port, stats_port = free_port(), free_port(), free_port()
    public = urlsplit(files_public_url()).port
    assert public is not None
    local = local_haproxy_config(
        config, binds={"9000": ocpp_port, str(public): files_port, "8404": stats_port},
        servers={**{name: b.port for name, b in gateways.items()}, "commands": commands.port},
        check_ports={sources.compose_env("commands")["GRIDLINK_HTTP_PORT"]: commands.port})
    (tmp_path / "haproxy.cfg").write_text(local)
    log = tmp_path / "haproxy.log"
    process = subprocess.Popen([haproxy_executable(), "-db", "-f", str(tmp_path / "haproxy.cfg")],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    token = "Tk" * 20  # an upload token: must not reach the log
    try:
        deadline = time.monotonic() + 15
        while True:  # until HAProxy listens and counts its servers up
            try:
                status, body = _request(ocpp_port, "GET", "/ocpp/CP-1")
                if status == 200 and _request(files_port, "HEAD", "/firmware/x")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        for backend in stand_ins:
            backend.requests.clear()

        # Chargers' WebSockets: to a gateway.
        status, body = _request(ocpp_port, "GET", "/ocpp/CP-7")
        assert status == 200 and body.decode() in gateways
        # Diagnostics uploads (raw PUT, multipart POST) and firmware downloads (with Range):
        # to the commands service, bodies whole.
        upload = b"x" * (2 << 20)
        assert _request(files_port, "PUT", f"/diagnostics/CP-7/{token}/diag.zip", upload) == (
            200, b"commands")
        assert _request(files_port, "POST", f"/diagnostics/CP-7/{token}", b"--b\r\n",
                        {"Content-Type": "multipart/form-data; boundary=b"}) == (200, b"commands")
        assert _request(files_port, "GET", "/firmware/cp-2.4.1.bin",
                        headers={"Range": "bytes=100-"}) == (200, b"commands")
        assert _request(files_port, "HEAD", "/firmware/cp-2.4.1.bin")[0] == 200
        # Nothing else, on either port.
        for port, path in itertools.product(
                (ocpp_port, files_port), ("/metrics", "/readyz", "/healthz", "/", "/stats")):
            assert _request(port, "GET", path)[0] == 404, (port, path)
        assert _request(ocpp_port, "PUT", "/diagnostics/CP-7/" + "w" * 32, b"x")[0] == 404
        assert _request(ocpp_port, "GET", "/firmware/cp-2.4.1.bin")[0] == 404
        assert _request(files_port, "GET", "/ocpp/CP-7")[0] == 404
    finally:
        process.terminate()
        process.wait(10)
        for backend in stand_ins:
            backend.stop()

    received = [(m, p, n) for m, p, _, n in commands.requests]
    assert received == [("PUT", f"/diagnostics/CP-7/{token}/diag.zip", len(upload)),
                        ("POST", f"/diagnostics/CP-7/{token}", 5),
                        ("GET", "/firmware/cp-2.4.1.bin", 0),
                        ("HEAD", "/firmware/cp-2.4.1.bin", 0)]
    assert commands.requests[2][2]["range"] == "bytes=100-"
    assert all("x-forwarded-for" in headers for _, _, headers, _ in commands.requests)
    assert [p for b in gateways.values() for _, p, _, _ in b.requests] == ["/ocpp/CP-7"]
    text = log.read_text()
    assert " files files/commands " in text, "file transfers are logged ..."
    assert token not in text, "... without their URLs"
