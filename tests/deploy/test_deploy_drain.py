"""A gateway stopped as Kubernetes stops it drains its chargers gradually (see gateway.yaml).

Started from the dev overlay's command line and environment (with a batch of 5), 12 chargers
connected; on SIGTERM: /readyz answers 503 from the start of the drain on, new handshakes are
refused with 503, chargers are closed 5, 5 and 2 with code 1012 one batch interval apart, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.deploy import localise, sources
from tests.helpers import delete_namespace
from tests.processes import free_port, http_status, stop_all, wait_for_metric, wait_until

pytestmark = pytest.mark.integration

CHARGERS = 12
BATCH = 5
INTERVAL_S = 1.0
SERVICE_RESTART = 1012


async def poll_readiness(port: int, log: list[tuple[float, float, int]],
                         answered: asyncio.Event, stop: asyncio.Event) -> None:
    """Ask /readyz back to back, logging (sent, answered, status), until the port closes."""
    while not stop.is_set():
        sent = time.monotonic()
        status = await http_status(f"http://127.0.0.1:{port}/readyz")
        if status is None:
            return
        log.append((sent, time.monotonic(), status))
        answered.set()


async def closed_at(ws: ClientConnection) -> tuple[float, int | None]:
    await ws.wait_closed()
    return time.monotonic(), ws.close_code


def batches(times: list[float], gap: float) -> list[list[float]]:
    groups: list[list[float]] = []
    for t in sorted(times):
        if groups and t - groups[-1][-1] < gap:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


async def test_gateway_drains_chargers_in_batches_on_sigterm(
    amqp_url: str, mongo_url: str, tmp_path: Path
) -> None:
    namespace = f"gldrain-{uuid.uuid4().hex[:8]}"
    overrides = {"GRIDLINK_DRAIN_BATCH_SIZE": str(BATCH),
                 "GRIDLINK_DRAIN_BATCH_INTERVAL_S": str(INTERVAL_S),
                 "GRIDLINK_ACCEPT_UNKNOWN_STATIONS": "true",
                 "GRIDLINK_ALLOW_SECURITY_PROFILE_0": "true",  # passwordless test chargers
                 "GRIDLINK_HEALTH_REPORT_INTERVAL_S": "1"}
    components = {}
    for name in ("authz", "gateway"):
        argv, env = sources.kubernetes_launch("overlays/dev", name)
        local = localise.localised(name, env, amqp_url=amqp_url, mongo_url=mongo_url,
                                 namespace=namespace, port=free_port(), files_port=free_port(),
                                 **overrides)
        components[name] = localise.start_deployed(name, argv, local, tmp_path / f"{name}.log")
    gateway = components["gateway"]
    base = f"ws://127.0.0.1:{gateway.port}/ocpp"
    chargers: list[ClientConnection] = []
    stop_polling = asyncio.Event()
    try:
        await wait_until(list(components.values()), "/readyz")
        for i in range(CHARGERS):
            chargers.append(await connect(f"{base}/DRAIN-{i:02d}", subprotocols=["ocpp1.6"],
                                          open_timeout=10))
        assert all(ws.subprotocol == "ocpp1.6" for ws in chargers)
        # The HPA's metric counts them (the gateway registers a charger just after its
        # handshake, so poll: /metrics has no event to await).
        await wait_for_metric(gateway, "gridlink_gateway_connections_open", CHARGERS)

        closes = [asyncio.create_task(closed_at(ws)) for ws in chargers]
        readiness: list[tuple[float, float, int]] = []
        answered = asyncio.Event()
        poller = asyncio.create_task(
            poll_readiness(gateway.port, readiness, answered, stop_polling))
        await asyncio.wait_for(answered.wait(), 10)  # polling before the signal goes out
        assert readiness[0][2] == 200
        sigterm_at = time.monotonic()
        gateway.popen.send_signal(signal.SIGTERM)

        # As soon as the first charger is closed, a newcomer is turned away.
        first_done, _ = await asyncio.wait(closes, return_when=asyncio.FIRST_COMPLETED,
                                           timeout=15)
        assert first_done, "no charger was closed after SIGTERM"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{base}/DRAIN-LATE", subprotocols=["ocpp1.6"], open_timeout=5):
                pass
        assert refused.value.response.status_code == 503
        refused_at = time.monotonic()

        results = await asyncio.wait_for(asyncio.gather(*closes), 30)
        exit_code = await gateway.exit_code(30)
        stop_polling.set()
        await asyncio.wait_for(poller, 10)
    finally:
        stop_polling.set()
        for ws in chargers:
            with contextlib.suppress(Exception):
                await ws.close()
        codes = await stop_all(list(components.values()))
        await delete_namespace(amqp_url, namespace)

    assert exit_code == 0, gateway.output()
    assert codes["authz"] == 0
    assert [code for _, code in results] == [SERVICE_RESTART] * CHARGERS
    close_times = [t for t, _ in results]
    first_close = min(close_times)
    assert first_close > sigterm_at

    # Not ready from the start of the drain on: every /readyz asked after the first charger was
    # closed says 503, and one asked no later than that already did.
    after = [status for sent, _, status in readiness if sent >= first_close]
    assert after and set(after) == {503}, readiness
    first_503 = min(sent for sent, _, status in readiness if status == 503)
    assert first_503 <= first_close, (first_503 - sigterm_at, first_close - sigterm_at)
    assert not [s for sent, _, s in readiness if sigterm_at <= sent and s == 200 and
                sent > first_503]

    # Closed in batches of 5, 5, 2, one interval apart; the late charger came mid-drain.
    groups = batches(close_times, gap=INTERVAL_S / 2)
    assert [len(g) for g in groups] == [5, 5, 2], [[round(t - sigterm_at, 3) for t in g]
                                                   for g in groups]
    starts = [g[0] for g in groups]
    assert all(b - a >= INTERVAL_S * 0.8 for a, b in itertools.pairwise(starts))
    assert refused_at < max(close_times)
