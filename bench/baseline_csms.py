"""The baseline: a single-process CSMS written the way a Python developer would without GridLink.

The ``ocpp`` library's ``ChargePoint`` with ``@on`` handlers, one per charger connection,
served by ``websockets``, each handler writing its message to MongoDB with pymongo's
``AsyncMongoClient`` (the same server and the same kind of documents GridLink keeps):
stations upserted on BootNotification/Heartbeat/StatusNotification, id tags read on
Authorize/StartTransaction, transactions numbered by a counter document, meter values
inserted.  Any charge point id is accepted; every id tag in ``id_tags`` (and the default
``SIMTAG0001``) is Accepted.  Library defaults are kept (schema validation in the default
thread pool); logging is at WARNING, as in production.

    python -m bench.baseline_csms --port 9300 --mongo-url mongodb://... --db baseline
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CentralSystemChargePoint(ChargePoint):
    """One connected charger, as the ocpp library's examples build it."""

    def __init__(self, charge_point_id: str, connection: Any, db: AsyncDatabase[Any]) -> None:
        super().__init__(charge_point_id, connection)
        self.db = db

    async def _id_tag_status(self, id_tag: str) -> str:
        tag = await self.db.id_tags.find_one({"_id": id_tag})
        return str(tag["status"]) if tag else AuthorizationStatus.invalid

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> call_result.BootNotification:
        await self.db.stations.update_one(
            {"_id": self.id},
            {
                "$set": {
                    "vendor": charge_point_vendor,
                    "model": charge_point_model,
                    "boot": kwargs,
                    "last_boot": now(),
                    "last_seen": now(),
                }
            },
            upsert=True,
        )
        return call_result.BootNotification(
            current_time=iso(now()), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        await self.db.stations.update_one({"_id": self.id}, {"$set": {"last_seen": now()}})
        return call_result.Heartbeat(current_time=iso(now()))

    @on(Action.status_notification)
    async def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> call_result.StatusNotification:
        await self.db.stations.update_one(
            {"_id": self.id},
            {
                "$set": {
                    f"connectors.{connector_id}": {
                        "status": status,
                        "error_code": error_code,
                        "at": now(),
                        **kwargs,
                    }
                }
            },
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": await self._id_tag_status(id_tag)})

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> call_result.StartTransaction:
        status = await self._id_tag_status(id_tag)
        counter = await self.db.counters.find_one_and_update(
            {"_id": "transaction_id"},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        transaction_id = int(counter["value"])
        await self.db.transactions.insert_one(
            {
                "_id": transaction_id,
                "station": self.id,
                "connector_id": connector_id,
                "id_tag": id_tag,
                "meter_start": meter_start,
                "started_at": timestamp,
                "status": status,
                **kwargs,
            }
        )
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info={"status": status}
        )

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> call_result.StopTransaction:
        await self.db.transactions.update_one(
            {"_id": transaction_id},
            {
                "$set": {
                    "meter_stop": meter_stop,
                    "stopped_at": timestamp,
                    "reason": kwargs.get("reason"),
                }
            },
        )
        return call_result.StopTransaction()

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list[Any], **kwargs: Any
    ) -> call_result.MeterValues:
        await self.db.meter_values.insert_one(
            {
                "station": self.id,
                "connector_id": connector_id,
                "transaction_id": kwargs.get("transaction_id"),
                "meter_value": meter_value,
                "received_at": now(),
            }
        )
        return call_result.MeterValues()


async def main(port: int, mongo_url: str, db_name: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    db = client[db_name]
    await db.id_tags.update_one(
        {"_id": "SIMTAG0001"}, {"$set": {"status": "Accepted"}}, upsert=True
    )

    async def on_connect(connection: ServerConnection) -> None:
        charge_point_id = connection.request.path.strip("/").split("/")[-1]
        charge_point = CentralSystemChargePoint(charge_point_id, connection, db)
        with contextlib.suppress(ConnectionClosed):
            await charge_point.start()

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(on_connect, "127.0.0.1", port, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
        print("ready", flush=True)
        await stop
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--db", default="baseline")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from simulator.resources import raise_file_limit

    raise_file_limit()
    asyncio.run(main(arguments.port, arguments.mongo_url, arguments.db))
