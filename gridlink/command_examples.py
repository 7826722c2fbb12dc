"""One example payload per CSMS-initiated OCPP 1.6 action.

Shown by ``gridlink command --help`` and in docs/commands.md; a test puts every one (and
every command in the docs) through the checks a real command gets — the 1.6 schema and the
features' rules — so the examples cannot drift from what GridLink accepts. Examples that
name something the station must hold (transaction 42, reservation 7, profile 100, an open
CSR) are refused only for that.
"""

from __future__ import annotations

import json
from typing import Any

#: A real (self-signed, EC P-256) root certificate, so the certificate examples pass the
#: checks GridLink makes before sending (an example CPO's, valid until 2126).
_PEM = """-----BEGIN CERTIFICATE-----
MIIBmjCCAUCgAwIBAgIEWjyeATAKBggqhkjOPQQDAjAyMRowGAYDVQQDDBFFeGFt
cGxlIENTTVMgUm9vdDEUMBIGA1UECgwLRXhhbXBsZSBDUE8wIBcNMjYwMTAxMDAw
MDAwWhgPMjEyNjAxMDEwMDAwMDBaMDIxGjAYBgNVBAMMEUV4YW1wbGUgQ1NNUyBS
b290MRQwEgYDVQQKDAtFeGFtcGxlIENQTzBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABNU9Ja7JDgsXJ+9SeJzdttxKMmnAcGAJVPFf1MW9sHcGOWj/7OmGpHQ0EbLh
RoejK+TkkKFPcxpZ2dT6mZ1qBkqjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P
AQH/BAQDAgGGMB0GA1UdDgQWBBQkMYRiVwQF3LEQ/4R7fyE6sKIOkDAKBggqhkjO
PQQDAgNIADBFAiEAvRPfhx3k4oH6Q2ycvIscwjGkN1fYxgcb38Ld9T0Nh4ECIDLu
nR8RlWOfDOsV3t0D9pTdmMrbesBx5KtZta54h4E5
-----END CERTIFICATE-----
"""
#: CP001's charger certificate (CN=CP001, O=Example CPO), issued by that root.
_CHARGER_PEM = """-----BEGIN CERTIFICATE-----
MIIBojCCAUigAwIBAgIEWjyeAjAKBggqhkjOPQQDAjAyMRowGAYDVQQDDBFFeGFt
cGxlIENTTVMgUm9vdDEUMBIGA1UECgwLRXhhbXBsZSBDUE8wIBcNMjYwMTAxMDAw
MDAwWhgPMjEyNjAxMDEwMDAwMDBaMCYxDjAMBgNVBAMMBUNQMDAxMRQwEgYDVQQK
DAtFeGFtcGxlIENQTzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDTJwi129Hf2
sDipEsAhJ52OhnijXOjWBx8ilNN6vAz5+/B09AaIaI9j0f8ctiUucqo3wXct7pf+
TyGaX3l+9TujVjBUMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgOIMBMGA1Ud
JQQMMAoGCCsGAQUFBwMCMB8GA1UdIwQYMBaAFCQxhGJXBAXcsRD/hHt/ITqwog6Q
MAoGCCqGSM49BAMCA0gAMEUCIHG5rvmP3SinmGgUcJ6M8eszmGvezlFJn2QxPCpb
7LeTAiEAp0r2mT+PCympw8TJjZDOIAcn+ccmZJd+eCTPFVyk0fc=
-----END CERTIFICATE-----
"""

EXAMPLES: dict[str, dict[str, Any]] = {
    # Core
    "ChangeAvailability": {"connectorId": 1, "type": "Inoperative"},
    "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "300"},
    "ClearCache": {},
    "DataTransfer": {"vendorId": "com.example", "messageId": "SetPrice", "data": "0.35"},
    "GetConfiguration": {"key": ["HeartbeatInterval", "MeterValueSampleInterval"]},
    "RemoteStartTransaction": {"connectorId": 1, "idTag": "TAG001"},
    "RemoteStopTransaction": {"transactionId": 42},
    "Reset": {"type": "Soft"},
    "UnlockConnector": {"connectorId": 1},
    # Firmware Management
    "GetDiagnostics": {"location": "https://files.example.com/diagnostics/CP001/TOKEN",
                       "startTime": "2026-11-01T00:00:00Z"},
    "UpdateFirmware": {"location": "https://files.example.com/firmware/cp-2.4.1.bin",
                       "retrieveDate": "2026-11-24T02:00:00Z", "retries": 3},
    # Security extension (OCPP 1.6 Security Whitepaper ed. 2): logs and signed firmware
    "GetLog": {"logType": "SecurityLog", "requestId": 17,
               "log": {"remoteLocation": "https://files.example.com/diagnostics/CP001/TOKEN",
                       "oldestTimestamp": "2026-11-01T00:00:00Z"}},
    "SignedUpdateFirmware": {"requestId": 18, "retries": 3, "firmware": {
        "location": "https://files.example.com/firmware/TOKEN/cp-2.4.1.bin",
        "retrieveDateTime": "2026-11-24T02:00:00Z",
        "signingCertificate": _PEM,
        "signature": "X4+UM1eYkb4BpXncsIRzMSMAznAI9mFcMUuOCv4zNpdXBl7dvhaaHodL1rtvh6Aafm7O4VL4u"
                     "4hDv+9Foy8+A86I+HRoEQ=="}},
    # Local Auth List Management
    "GetLocalListVersion": {},
    "SendLocalList": {"listVersion": 2, "updateType": "Differential",
                      "localAuthorizationList": [
                          {"idTag": "TAG001", "idTagInfo": {"status": "Accepted"}},
                          {"idTag": "TAG002"}]},
    # Reservation
    "CancelReservation": {"reservationId": 7},
    "ReserveNow": {"connectorId": 1, "expiryDate": "2030-06-01T18:00:00Z",
                   "idTag": "TAG001", "reservationId": 7},
    # Smart Charging
    "ClearChargingProfile": {"id": 100},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
    "SetChargingProfile": {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 100, "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": {"startSchedule": "2026-12-01T00:00:00Z", "chargingRateUnit": "A",
                             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}},
    # Remote Trigger
    "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
    # Security extension (certificates: easier with `gridlink certificates ...`)
    "CertificateSigned": {"certificateChain": _CHARGER_PEM + _PEM},
    "DeleteCertificate": {"certificateHashData": {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "6c5f2a8e0b0d4f0e9c1a3b7d5e2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f",
        "issuerKeyHash": "1d3f5b7a9c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c",
        "serialNumber": "5a3c9e01"}},
    "ExtendedTriggerMessage": {"requestedMessage": "SignChargePointCertificate"},
    "GetInstalledCertificateIds": {"certificateType": "CentralSystemRootCertificate"},
    "InstallCertificate": {"certificateType": "CentralSystemRootCertificate",
                           "certificate": _PEM},
}


def epilog() -> str:
    """The examples as ``gridlink command`` lines."""
    lines = ["examples (one per action):"]
    for action, payload in EXAMPLES.items():
        text = json.dumps(payload, separators=(",", ":"))
        lines.append(f"  gridlink command CP001 {action} '{text}'")
    return "\n".join(lines)
