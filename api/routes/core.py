"""The API's own part: the registries, transactions, commands (:class:`ApiPart` "core")."""

from __future__ import annotations

from fastapi import APIRouter
from pymongo import ASCENDING, IndexModel

from api import audit, commanding, keys
from api.parts import ApiPart
from api.routes import (
    commands,
    file_jobs,
    id_tags,
    registries,
    station_groups,
    stations,
    stored_files,
    transactions,
)
from services.settings import Settings


def part(settings: Settings) -> ApiPart:
    router = APIRouter()
    for module in (stations, commands, transactions, id_tags, registries, station_groups,
                   stored_files, file_jobs):
        router.include_router(module.router)
    return ApiPart(
        name="core", router=router,
        indexes={keys.COLLECTION: [IndexModel([("created_at", ASCENDING)])],
                 audit.COLLECTION: [IndexModel([("key_id", ASCENDING), ("at", ASCENDING)])],
                 commanding.REQUESTS: [IndexModel([("command_id", ASCENDING)])]},
        retention=(audit.retention(settings), commanding.retention(settings)))
