"""The authz service as a ServiceSpec for the shared runtime."""

from __future__ import annotations

from authz.handlers import build_router, handle_connect
from authz.repository import INDEXES, AuthzRepository
from services.router import Router
from services.runtime import ServiceRuntime, ServiceSpec


def _build(runtime: ServiceRuntime) -> Router:
    settings = runtime.settings
    repo = AuthzRepository(runtime.store.db, accept_unknown=settings.accept_unknown_stations,
                           default_registration=settings.default_registration)
    runtime.state["repo"] = repo
    return build_router(repo, settings, runtime.publish_event)


SPEC = ServiceSpec(name="authz", indexes=INDEXES, build=_build,
                   handlers={"rpc.connect": handle_connect})
