"""Security configuration through ChangeConfiguration, wired into the command path.

- AuthorizationKey (A01): the new key must be a valid key (:mod:`commands.credentials.rules`).
  Only its Argon2id hash is recorded with the command (``new_key_hash``); the payload is
  stored redacted and the clear key goes to the charger from memory
  (:mod:`commands.redaction`). When the charger takes it, the station's password becomes
  the new hash, and the old key still works for ``GRIDLINK_AUTHORIZATION_KEY_GRACE_S`` or
  until the charger's first connection with the new one (authz). Rejected or NotSupported:
  nothing changes, the old key stays (A01.FR.04).
- SecurityProfile (A05, TC_083): upwards only, and only when the station has a password (for
  1 and 2), GridLink serves TLS (2 and 3) and verifies client certificates (3). When the
  charger takes it, the profile is scheduled: authz makes it the station's profile at the
  first connection that meets it.

Each change the charger takes is recorded as a CSMS security event
(ReconfigurationOfSecurityParameters), once per command. A change is applied once: a
redelivered answer (the hooks run again) finds the command marked and changes nothing, so a
stale answer can never bring an older key or profile back.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from commands.credentials import rules
from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from services import security_events, stations
from services.envelope import CommandRequest
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.credentials")
#: After RebootRequired the charger uses its old key until it reboots, whenever that is: the
#: old key is accepted until the first login with the new one, for at most this long.
REBOOT_GRACE = timedelta(days=30)

#: Argon2id hashes computed at once (each ~40 ms of CPU and 19 MiB); the rest wait.
HASHES_AT_ONCE = 2
EVENT_TYPE = "ReconfigurationOfSecurityParameters"  # whitepaper §8


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    db = hooks.runtime.store.db
    hooks.add_indexes(security_events.INDEXES)
    hashing = asyncio.Semaphore(HASHES_AT_ONCE)

    @hooks.validate("ChangeConfiguration")
    async def security_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        key, value = rules.security_key(request.payload["key"]), request.payload["value"]
        if key == rules.AUTHORIZATION_KEY:
            refuse(rules.authorization_key_problem(value))
        elif key == rules.SECURITY_PROFILE:
            station = await rt.with_store(lambda: commands.repo.station(
                request.station, ("security_profile", "password_hash")))
            refuse(rules.profile_change_problem(
                value, current=stations.security_profile(station),
                has_password=bool((station or {}).get("password_hash")),
                offered=rules.Offered.from_settings(rt.settings)))

    @hooks.record("ChangeConfiguration")
    async def key_hash(rt: ServiceRuntime, request: CommandRequest) -> dict[str, Any]:
        if rules.security_key(request.payload["key"]) != rules.AUTHORIZATION_KEY:
            return {}
        async with hashing:
            new_hash = await asyncio.to_thread(stations.hash_password, request.payload["value"])
        return {"new_key_hash": new_hash}

    @hooks.after("ChangeConfiguration")
    async def security_changed(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        key = rules.security_key(command["payload"]["key"])
        answer = (command.get("response") or {}).get("status")
        if key is None or answer not in rules.TAKEN or command.get("security_applied_at"):
            return
        station, at = command["station"], command.get("updated_at") or utcnow()
        if key == rules.AUTHORIZATION_KEY:
            new_hash = command.get("new_key_hash")
            if not new_hash:  # recorded by a release without this feature: nothing to apply
                log.error("AuthorizationKey accepted but no hash recorded; set the station's "
                          "password again", extra={"station": station,
                                                   "command_id": command["_id"]})
                return
            grace = timedelta(seconds=rt.settings.authorization_key_grace_s)
            if answer == "RebootRequired":  # the old key stays in use until the reboot
                grace = max(grace, REBOOT_GRACE)
            grace_until = at + grace
            known = await rt.with_store(lambda: stations.rotate_password(
                db, station, new_hash, grace_until=grace_until))
            change = "AuthorizationKey changed"
        else:
            profile = rules.parse_profile(command["payload"]["value"])
            assert profile is not None  # validated before it was sent
            await rt.with_store(lambda: stations.schedule_profile(db, station, profile))
            known = await rt.with_store(lambda: commands.repo.station_exists(station))
            change = f"SecurityProfile {profile} scheduled"
        if not known:
            log.warning("security change taken by a station no longer registered",
                        extra={"station": station, "command_id": command["_id"]})
            return
        sender = command.get("sender") or "unknown"
        event = security_events.event_document(
            station=station, type=EVENT_TYPE, at=at, source=security_events.CSMS,
            tech_info=f"{change} by command {command['_id']} from {sender} ({answer})",
            key=f"command\0{command['_id']}")
        await rt.with_store(lambda: security_events.record(db, event))
        await rt.with_store(lambda: commands.repo.annotate(
            command["_id"], {"security_applied_at": utcnow()}))
        log.info(change, extra={"station": station, "command_id": command["_id"],
                                "sender": sender})
