"""How a simulated charge point answers CALLs from the CSMS (OCPP 1.6 core §5).

One function per action: ``handler(charger, payload, now) -> ocpp.v16.call_result.<Action>``.
The payload has already passed the 1.6 schema; the handler changes the charger's state and
may queue CALLs that follow from the answer (a RemoteStartTransaction's StartTransaction,
the message a TriggerMessage asks for, a firmware update's status notifications), which
the charger sends after the CALLRESULT.  The security extension's CSMS calls are answered by
:mod:`simulator.security_calls`; actions in neither table are answered with CALLERROR
NotImplemented (NotSupported for the known actions of the other direction).

The handlers see a charger only through :class:`~simulator.answering.AnsweringCharger`:
:class:`simulator.charger.Charger` implements it and answers with this module (through
:mod:`simulator.dispatch`), never the reverse.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call, call_result, enums
from ocpp.v16 import datatypes as dt

from simulator import frames
from simulator.actions import CHARGER_ACTIONS, SECURITY_CHARGER_ACTIONS
from simulator.answering import AnsweringCharger, Handler
from simulator.connectors import PendingCall, Phase

#: Known 1.6 actions that a charge point does not accept from a CSMS: the charger-initiated
#: ones (DataTransfer goes both ways), the security extension's included.
KNOWN_NOT_SUPPORTED = (CHARGER_ACTIONS - {"DataTransfer"}) | SECURITY_CHARGER_ACTIONS


def reset(charger: AnsweringCharger, payload: dict[str, Any], now: float) -> call_result.Reset:
    """Accept; stop transactions (reason Hard/SoftReset), then reconnect and boot again."""
    charger.request_reset(payload["type"])
    return call_result.Reset(status=enums.ResetStatus.accepted)


def change_configuration(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ChangeConfiguration:
    """Set a writable key; Rejected for readonly or ill-typed values, NotSupported if unknown.

    A new AuthorizationKey (whitepaper A01) makes the charger close the connection after this
    answer and reconnect with it.
    """
    status = charger.configuration.change(payload["key"], payload["value"])
    if status == "Accepted" and payload["key"] == "HeartbeatInterval":
        charger.heartbeat_interval_changed(now)
    if status == "Accepted" and payload["key"] in ("AuthorizationKey", "CpoName"):
        charger.security_event("ReconfigurationOfSecurityParameters", f"{payload['key']} changed")
    if status == "Accepted" and payload["key"] == "AuthorizationKey":
        charger.request_reconnect()  # its value is never logged (A01.FR.12)
    return call_result.ChangeConfiguration(status=enums.ConfigurationStatus(status))


def get_configuration(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.GetConfiguration:
    """All keys, or the requested ones plus ``unknownKey``."""
    known, unknown = charger.configuration.report(payload.get("key"))
    return call_result.GetConfiguration(
        configuration_key=[
            dt.KeyValue(
                key=str(k["key"]),
                readonly=bool(k["readonly"]),
                value=None if k["value"] is None else str(k["value"]),
            )
            for k in known
        ],
        unknown_key=unknown or None,
    )


def remote_start_transaction(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.RemoteStartTransaction:
    """Start a transaction on the requested (or first free) connector."""
    wanted = payload.get("connectorId")
    if wanted is not None:
        connector = charger.script.connector(wanted)
        candidates = [connector] if connector is not None else []
    else:
        candidates = list(charger.connectors)
    for connector in candidates:
        if (
            connector.phase is Phase.IDLE
            and connector.operative
            and connector.reservation_id is None
        ):
            charger.script.remote_start(connector, payload["idTag"])
            return call_result.RemoteStartTransaction(status=enums.RemoteStartStopStatus.accepted)
    return call_result.RemoteStartTransaction(status=enums.RemoteStartStopStatus.rejected)


def remote_stop_transaction(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.RemoteStopTransaction:
    """Stop the transaction with that id (reason Remote); Rejected when it is not running."""
    for connector in charger.connectors:
        if connector.transaction_id == payload["transactionId"] and connector.phase in (
            Phase.STARTED,
            Phase.CHARGING,
        ):
            charger.script.stop_transaction(connector, "Remote")
            return call_result.RemoteStopTransaction(status=enums.RemoteStartStopStatus.accepted)
    return call_result.RemoteStopTransaction(status=enums.RemoteStartStopStatus.rejected)


def unlock_connector(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.UnlockConnector:
    """Unlock; a running transaction is stopped first (reason UnlockCommand)."""
    connector = charger.script.connector(payload["connectorId"])
    if connector is None:
        return call_result.UnlockConnector(status=enums.UnlockStatus.not_supported)
    if connector.transaction_id is not None and connector.phase in (Phase.STARTED, Phase.CHARGING):
        charger.script.stop_transaction(connector, "UnlockCommand")
    return call_result.UnlockConnector(status=enums.UnlockStatus.unlocked)


def change_availability(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ChangeAvailability:
    """Operative/Inoperative; Scheduled while a transaction runs; Rejected for no such connector."""
    connector_id = payload["connectorId"]
    operative = payload["type"] == "Operative"
    if connector_id == 0:
        targets = list(charger.connectors)
    else:
        connector = charger.script.connector(connector_id)
        if connector is None:
            return call_result.ChangeAvailability(status=enums.AvailabilityStatus.rejected)
        targets = [connector]
    scheduled = False
    for connector in targets:
        if not operative and connector.phase is not Phase.IDLE:
            connector.pending_inoperative = True
            scheduled = True
            continue
        connector.pending_inoperative = False
        if connector.operative != operative:
            connector.operative = operative
            if connector.phase is Phase.IDLE and connector.reservation_id is None:
                status = "Available" if operative else "Unavailable"
                charger.enqueue(charger.script.status_call(connector.id, status))
    if connector_id == 0:
        charger.enqueue(charger.script.status_call(0))
    status = enums.AvailabilityStatus.scheduled if scheduled else enums.AvailabilityStatus.accepted
    return call_result.ChangeAvailability(status=status)


def trigger_message(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.TriggerMessage:
    """Accept and queue the requested message (sent right after this answer)."""
    connector_id = payload.get("connectorId")
    if (
        connector_id is not None
        and connector_id != 0
        and charger.script.connector(connector_id) is None
    ):
        return call_result.TriggerMessage(status=enums.TriggerMessageStatus.rejected)
    requested = payload["requestedMessage"]
    if requested == "DiagnosticsStatusNotification":
        charger.enqueue(_diagnostics_status("Idle"))
    elif requested == "FirmwareStatusNotification":
        charger.enqueue(_firmware_status("Idle"))
    elif not queue_triggered(charger, requested, connector_id):
        return call_result.TriggerMessage(status=enums.TriggerMessageStatus.not_implemented)
    return call_result.TriggerMessage(status=enums.TriggerMessageStatus.accepted)


def queue_triggered(charger: AnsweringCharger, requested: str, connector_id: int | None) -> bool:
    """Queue a triggered core message (TriggerMessage, ExtendedTriggerMessage): the
    BootNotification, Heartbeat, StatusNotifications or MeterValues asked for; False for
    any other message."""
    if requested == "BootNotification":
        charger.enqueue(charger.boot_call())
    elif requested == "Heartbeat":
        charger.enqueue(PendingCall("Heartbeat", call.Heartbeat))
    elif requested == "StatusNotification":
        ids = [connector_id] if connector_id is not None else range(len(charger.connectors) + 1)
        for each in ids:
            charger.enqueue(charger.script.status_call(each))
    elif requested == "MeterValues":
        targets = [charger.script.connector(connector_id)] if connector_id else charger.connectors
        for connector in targets:
            if connector is not None:
                charger.enqueue(charger.script.meter_values_call(connector))
    else:
        return False
    return True


def clear_cache(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ClearCache:
    """Accepted (the simulator keeps no authorization cache)."""
    return call_result.ClearCache(status=enums.ClearCacheStatus.accepted)


def data_transfer(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.DataTransfer:
    """Accepted (echoing ``data``) for the charger's own vendor id; UnknownVendorId otherwise."""
    if payload["vendorId"] != charger.config.vendor:
        return call_result.DataTransfer(status=enums.DataTransferStatus.unknown_vendor_id)
    return call_result.DataTransfer(
        status=enums.DataTransferStatus.accepted, data=payload.get("data")
    )


def set_charging_profile(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.SetChargingProfile:
    """Store the profile by id; Rejected for no such connector."""
    connector_id = payload["connectorId"]
    if connector_id != 0 and charger.script.connector(connector_id) is None:
        return call_result.SetChargingProfile(status=enums.ChargingProfileStatus.rejected)
    profile = dict(payload["csChargingProfiles"])
    profile["connectorId"] = connector_id
    charger.charging_profiles[profile["chargingProfileId"]] = profile
    return call_result.SetChargingProfile(status=enums.ChargingProfileStatus.accepted)


def clear_charging_profile(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ClearChargingProfile:
    """Remove matching profiles: Accepted if any matched, Unknown otherwise."""
    matches = [
        profile_id
        for profile_id, profile in charger.charging_profiles.items()
        if payload.get("id") in (None, profile_id)
        and payload.get("connectorId") in (None, profile["connectorId"])
        and payload.get("chargingProfilePurpose") in (None, profile["chargingProfilePurpose"])
        and payload.get("stackLevel") in (None, profile["stackLevel"])
    ]
    for profile_id in matches:
        del charger.charging_profiles[profile_id]
    status = enums.ClearChargingProfileStatus("Accepted" if matches else "Unknown")
    return call_result.ClearChargingProfile(status=status)


def get_composite_schedule(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.GetCompositeSchedule:
    """A flat 32 A (or 22 kW) schedule for ``duration``; Rejected for no such connector."""
    connector_id = payload["connectorId"]
    if connector_id != 0 and charger.script.connector(connector_id) is None:
        return call_result.GetCompositeSchedule(status=enums.GetCompositeScheduleStatus.rejected)
    unit = payload.get("chargingRateUnit", "A")
    return call_result.GetCompositeSchedule(
        status=enums.GetCompositeScheduleStatus.accepted,
        connector_id=connector_id,
        schedule_start=frames.timestamp(charger.wall_clock()),
        charging_schedule={
            "duration": payload["duration"],
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 32.0 if unit == "A" else 22000.0}
            ],
        },
    )


def reserve_now(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ReserveNow:
    """Reserve an idle connector (status Reserved); Occupied/Unavailable/Rejected otherwise."""
    connector = charger.script.connector(payload["connectorId"])
    if connector is None:
        return call_result.ReserveNow(status=enums.ReservationStatus.rejected)
    if not connector.operative:
        return call_result.ReserveNow(status=enums.ReservationStatus.unavailable)
    if connector.phase is not Phase.IDLE or connector.reservation_id not in (
        None,
        payload["reservationId"],
    ):
        return call_result.ReserveNow(status=enums.ReservationStatus.occupied)
    connector.reservation_id = payload["reservationId"]
    connector.id_tag = payload["idTag"]
    charger.enqueue(charger.script.status_call(connector.id, "Reserved"))
    return call_result.ReserveNow(status=enums.ReservationStatus.accepted)


def cancel_reservation(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.CancelReservation:
    """Cancel a reservation this charger holds (status back to Available)."""
    for connector in charger.connectors:
        if connector.reservation_id == payload["reservationId"]:
            connector.reservation_id = None
            connector.id_tag = None
            if connector.phase is Phase.IDLE:
                charger.enqueue(charger.script.status_call(connector.id, "Available"))
            return call_result.CancelReservation(status=enums.CancelReservationStatus.accepted)
    return call_result.CancelReservation(status=enums.CancelReservationStatus.rejected)


def get_local_list_version(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.GetLocalListVersion:
    """The version of the local authorization list (0: none installed)."""
    return call_result.GetLocalListVersion(list_version=charger.local_list_version)


def send_local_list(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.SendLocalList:
    """Full replaces the list; Differential needs a newer version (else VersionMismatch)."""
    version = payload["listVersion"]
    entries = payload.get("localAuthorizationList") or []
    if payload["updateType"] == "Differential":
        if version <= charger.local_list_version:
            return call_result.SendLocalList(status=enums.UpdateStatus.version_mismatch)
    else:
        charger.local_list.clear()
    for entry in entries:
        info = entry.get("idTagInfo")
        if info is None:
            charger.local_list.pop(entry["idTag"], None)
        else:
            charger.local_list[entry["idTag"]] = info
    charger.local_list_version = version
    return call_result.SendLocalList(status=enums.UpdateStatus.accepted)


def _firmware_status(status: str) -> PendingCall:
    return PendingCall(
        "FirmwareStatusNotification",
        lambda: call.FirmwareStatusNotification(status=enums.FirmwareStatus(status)),
    )


def _diagnostics_status(status: str) -> PendingCall:
    return PendingCall(
        "DiagnosticsStatusNotification",
        lambda: call.DiagnosticsStatusNotification(status=enums.DiagnosticsStatus(status)),
    )


def update_firmware(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.UpdateFirmware:
    """Empty answer, then FirmwareStatusNotification Downloading..Installed."""
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        charger.enqueue(_firmware_status(status))
    return call_result.UpdateFirmware()


def get_diagnostics(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.GetDiagnostics:
    """A file name, then DiagnosticsStatusNotification Uploading, Uploaded."""
    for status in ("Uploading", "Uploaded"):
        charger.enqueue(_diagnostics_status(status))
    return call_result.GetDiagnostics(file_name=f"diagnostics-{charger.id[:32]}.log")


HANDLERS: dict[str, Handler] = {
    "CancelReservation": cancel_reservation,
    "ChangeAvailability": change_availability,
    "ChangeConfiguration": change_configuration,
    "ClearCache": clear_cache,
    "ClearChargingProfile": clear_charging_profile,
    "DataTransfer": data_transfer,
    "GetCompositeSchedule": get_composite_schedule,
    "GetConfiguration": get_configuration,
    "GetDiagnostics": get_diagnostics,
    "GetLocalListVersion": get_local_list_version,
    "RemoteStartTransaction": remote_start_transaction,
    "RemoteStopTransaction": remote_stop_transaction,
    "ReserveNow": reserve_now,
    "Reset": reset,
    "SendLocalList": send_local_list,
    "SetChargingProfile": set_charging_profile,
    "TriggerMessage": trigger_message,
    "UnlockConnector": unlock_connector,
    "UpdateFirmware": update_firmware,
}
