"""Which protocol a station's file transfers use when the operator does not say
(``--protocol``): collection ``file_transfer_protocols``, one document per station the
operator gave a default (``gridlink diagnostics protocol STATION PROTOCOL``)::

    {_id: station, protocol: "http" | "ftp" | "ftps", set_at}

Without one, the charger's SupportedFileTransferProtocols (its configuration snapshot,
:mod:`commands.station_configuration`) decides, most secure first
(:func:`commands.files.rules.transfer_protocol`).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.file_transfers import (
    STATION_PROTOCOLS,
    SUPPORTED_PROTOCOLS_KEY,
    station_protocol_facts,
)
from services.ocpp16 import utcnow

COLLECTION = STATION_PROTOCOLS
KEY = SUPPORTED_PROTOCOLS_KEY

Db = AsyncDatabase[dict[str, Any]]


async def get(db: Db, station: str) -> str | None:
    """The operator's default for the station, or None."""
    document = await db[COLLECTION].find_one({"_id": station})
    return str(document["protocol"]) if document else None


async def set_default(db: Db, station: str, protocol: str | None) -> None:
    """Set the station's default (None: remove it, the charger's list decides again)."""
    if protocol is None:
        await db[COLLECTION].delete_one({"_id": station})
        return
    await db[COLLECTION].update_one({"_id": station},
                                    {"$set": {"protocol": protocol, "set_at": utcnow()}},
                                    upsert=True)


#: (the operator's default, the charger's SupportedFileTransferProtocols).
facts = station_protocol_facts
