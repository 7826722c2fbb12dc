"""Bearer API keys and scopes: a route takes ``caller: Reader`` (scope ``read``),
``caller: Commander`` (``commands``) or ``caller: Admin`` (``admin``) — or
``Annotated[ApiKey, require(scope)]`` — and gets the caller's :class:`~api.keys.ApiKey`.

401 (missing, malformed, unknown or revoked key; with ``WWW-Authenticate: Bearer``) and
403 (the key lacks the scope) are problem documents; each refusal is logged with the peer
and counted (``gridlink_api_refusals_total``). The caller's key id goes on
``request.state.key_id`` for the audit trail (:mod:`api.audit`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import keys
from api.context import Context
from api.metrics import REFUSALS
from api.problems import Problem

log = logging.getLogger("gridlink.api.auth")

Caller = keys.ApiKey
_bearer = HTTPBearer(auto_error=False, description="An API key: `gridlink api-keys add`.")


def _refuse(request: Request, status: int, reason: str, detail: str,
            key_id: str | None = None) -> Problem:
    REFUSALS.labels(reason).inc()
    log.warning("api request refused", extra={
        "peer": request.client.host if request.client else None, "reason": reason,
        "key_id": key_id, "method": request.method, "path": request.url.path,
        "request_id": getattr(request.state, "request_id", None)})
    headers = {"WWW-Authenticate": 'Bearer realm="gridlink"'} if status == 401 else None
    return Problem(status, detail, headers=headers)


def require(scope: str) -> Any:
    """A dependency: the caller's key, which must allow ``scope``."""
    if scope not in keys.SCOPES:
        raise ValueError(f"no scope {scope!r}")

    async def authorized(request: Request, ctx: Context,
                         credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                Depends(_bearer)]) -> keys.ApiKey:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _refuse(request, 401, "missing", "an API key is required: "
                          "Authorization: Bearer <key> (gridlink api-keys add)")
        presented = credentials.credentials
        caller = await keys.authenticate(ctx.db, presented)
        if caller is None:
            raise _refuse(request, 401, "invalid", "the API key is not valid (unknown, "
                          "malformed or revoked)", keys.key_id_of(presented))
        request.state.key_id = caller.key_id
        if not caller.allows(scope):
            raise _refuse(request, 403, "scope", f"this API key lacks the {scope!r} scope",
                          caller.key_id)
        return caller

    return Depends(authorized)


Reader = Annotated[keys.ApiKey, require("read")]
Commander = Annotated[keys.ApiKey, require("commands")]
Admin = Annotated[keys.ApiKey, require("admin")]
