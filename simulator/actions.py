"""The OCPP 1.6 action names the simulator needs, defined once, here.

The simulator imports nothing of GridLink (it tests it from the outside), so it keeps its own
copy of the 1.6 vocabulary rather than GridLink's kernel's: the actions a charge point sends
(OCPP 1.6 core §4), the actions of the security extension (1.6 Security Whitepaper edition
2) in both directions and the messages a charger keeps while offline.  The CSMS-initiated
actions are the keys of :data:`simulator.csms_calls.HANDLERS` (core) and
:data:`simulator.security_calls.HANDLERS` (security extension).
"""

from __future__ import annotations

#: The ten CALLs a 1.6 charge point sends to a CSMS (DataTransfer also goes the other way).
CHARGER_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    }
)

#: CALLs a CSMS sends in the 1.6 security extension (answered by simulator.security_calls).
SECURITY_CSMS_ACTIONS = frozenset(
    {
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)

#: CALLs a charge point sends in the 1.6 security extension.
SECURITY_CHARGER_ACTIONS = frozenset(
    {
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
)

#: Transaction-related messages (OCPP 1.6 core §4.8, §4.10).
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})

#: Charger-initiated messages a real charger queues while offline and delivers later, in
#: order: the transaction messages and security events (whitepaper A04.FR.02: "queued with
#: a guaranteed delivery").  The only ones that survive a disconnect.
KEPT_OFFLINE_ACTIONS = TRANSACTION_ACTIONS | {"SecurityEventNotification"}

__all__ = [
    "CHARGER_ACTIONS",
    "KEPT_OFFLINE_ACTIONS",
    "SECURITY_CHARGER_ACTIONS",
    "SECURITY_CSMS_ACTIONS",
    "TRANSACTION_ACTIONS",
]
