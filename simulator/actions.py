"""The OCPP 1.6 action names the simulator needs, defined once, here.

The simulator imports nothing of GridLink (it tests it from the outside), so it keeps its own
copy of the 1.6 vocabulary rather than GridLink's kernel's: the actions a charge point sends
(OCPP 1.6 core §4), the CSMS-initiated actions of the security extension (1.6 Security
Whitepaper edition 2) and the transaction-related messages a charger keeps while offline.
The CSMS-initiated core actions are the keys of :data:`simulator.csms_calls.HANDLERS`.
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

#: CALLs a CSMS sends in the 1.6 security extension (the simulator implements none of them).
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

#: Charger-initiated messages a real charger queues while offline and delivers later, in
#: order (OCPP 1.6 core §4.8, §4.10): the only ones that survive a disconnect.
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})

__all__ = ["CHARGER_ACTIONS", "SECURITY_CSMS_ACTIONS", "TRANSACTION_ACTIONS"]
