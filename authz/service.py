"""The authz service: station registry, Authorize, DataTransfer, handshake admission, the
gateways' last-seen and connection facts."""

from __future__ import annotations

from authz.admission import Admission
from authz.connections import Connections
from authz.handlers import build_router
from authz.last_seen import LastSeen
from authz.repository import DATA_TRANSFERS, INDEXES, AuthzRepository
from services import security_events
from services.retention import Retention
from services.runtime import Route, Service, ServiceRuntime, ServiceSpec, run_service
from services.settings import Settings
from services.topology import ADMISSION_KEY, CONNECTION_KEY, SEEN_KEY


def build(runtime: ServiceRuntime) -> Service:
    settings = runtime.settings
    repo = AuthzRepository(runtime.store.db, default_registration=settings.default_registration,
                           password_checks=settings.password_checks_concurrency)
    admission = Admission(runtime, repo)
    return Service(router=build_router(repo, settings),
                   routes=(Route("calls", ADMISSION_KEY, admission.handle, lane="rpc"),
                           Route("calls", SEEN_KEY, LastSeen(runtime, repo).handle),
                           Route("calls", CONNECTION_KEY, Connections(runtime).handle)),
                   indexes=INDEXES, retention=(
                       Retention(DATA_TRANSFERS, "received_at",
                                 settings.retention_data_transfers_days),
                       # also written by commands (the chargers' events); authz applies it
                       Retention(security_events.COLLECTION, "received_at",
                                 settings.retention_security_events_days)))


SPEC = ServiceSpec(name="authz", build=build)


async def main(settings: Settings) -> None:
    """Run the authz service until SIGTERM."""
    await run_service(SPEC, settings)
