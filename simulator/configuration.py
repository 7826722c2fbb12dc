"""The configuration keys a simulated charge point reports and accepts (OCPP 1.6 §9.1).

A small typed key/value store: ``GetConfiguration`` reads it, ``ChangeConfiguration``
writes it (readonly keys are Rejected, unknown keys NotSupported, values of the wrong
kind Rejected).  The charger reads ``HeartbeatInterval``, ``MeterValueSampleInterval``
and ``AuthorizeRemoteTxRequests`` from here, so changing them changes its behaviour.

The security whitepaper's keys (its section 7) are here too: ``AuthorizationKey`` holds the
HTTP Basic password the charger connects with (A00.FR.205, A01.FR.01; write-only: reported
without its value), ``CpoName`` the O of its CSRs (A02.FR.13), ``SecurityProfile`` the
profile it uses (readonly here: the simulator's profile is set by its options).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.charger_config import ChargerConfig


@dataclass(slots=True)
class Key:
    """One configuration key: its text value, whether it is readonly and its kind."""

    value: str
    readonly: bool = False
    kind: str = "str"  # "int", "bool", "csv", "str" or "password" (16 to 40 characters)
    writeonly: bool = False  # reported without its value (AuthorizationKey)


def default_keys(
    connectors: int,
    heartbeat_interval_s: int,
    meter_interval_s: int,
    transaction_message_attempts: int = 3,
    transaction_message_retry_s: int = 60,
) -> dict[str, Key]:
    """The core-profile keys a simulated charger starts with."""
    return {
        "AllowOfflineTxForUnknownId": Key("false", kind="bool"),
        "AuthorizationCacheEnabled": Key("false", kind="bool"),
        "AuthorizeRemoteTxRequests": Key("false", kind="bool"),
        "ChargeProfileMaxStackLevel": Key("8", readonly=True, kind="int"),
        "ClockAlignedDataInterval": Key("0", kind="int"),
        "ConnectionTimeOut": Key("60", kind="int"),
        "GetConfigurationMaxKeys": Key("64", readonly=True, kind="int"),
        "HeartbeatInterval": Key(str(heartbeat_interval_s), kind="int"),
        "LocalAuthListEnabled": Key("true", kind="bool"),
        "LocalAuthListMaxLength": Key("1000", readonly=True, kind="int"),
        "LocalAuthorizeOffline": Key("true", kind="bool"),
        "LocalPreAuthorize": Key("false", kind="bool"),
        "MeterValuesAlignedData": Key("Energy.Active.Import.Register", kind="csv"),
        "MeterValuesSampledData": Key("Energy.Active.Import.Register", kind="csv"),
        "MeterValueSampleInterval": Key(str(meter_interval_s), kind="int"),
        "NumberOfConnectors": Key(str(connectors), readonly=True, kind="int"),
        "ResetRetries": Key("1", kind="int"),
        "SendLocalListMaxLength": Key("100", readonly=True, kind="int"),
        "StopTransactionOnEVSideDisconnect": Key("true", kind="bool"),
        "StopTransactionOnInvalidId": Key("true", kind="bool"),
        "StopTxnAlignedData": Key("", kind="csv"),
        "StopTxnSampledData": Key("", kind="csv"),
        "SupportedFeatureProfiles": Key(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
            "SmartCharging,RemoteTrigger",
            readonly=True,
            kind="csv",
        ),
        "TransactionMessageAttempts": Key(str(transaction_message_attempts), kind="int"),
        "TransactionMessageRetryInterval": Key(str(transaction_message_retry_s), kind="int"),
        "UnlockConnectorOnEVSideDisconnect": Key("true", kind="bool"),
        "WebSocketPingInterval": Key("0", kind="int"),
    }


#: The whitepaper's readonly keys with the same value on every charger (shared: never written).
_FIXED_SECURITY_KEYS = {
    "AdditionalRootCertificateCheck": Key("false", readonly=True, kind="bool"),
    "CertificateSignedMaxChainSize": Key("10000", readonly=True, kind="int"),
    "CertificateStoreMaxLength": Key("20", readonly=True, kind="int"),
    "SupportedFileTransferProtocols": Key("HTTP,HTTPS", readonly=True, kind="csv"),
}


def security_keys(
    profile: int, authorization_key: str | None, cpo_name: str | None
) -> dict[str, Key]:
    """The security whitepaper's keys (its section 7) a simulated charger starts with."""
    return {
        **_FIXED_SECURITY_KEYS,
        "AuthorizationKey": Key(authorization_key or "", kind="password", writeonly=True),
        "CpoName": Key(cpo_name or ""),
        "SecurityProfile": Key(str(profile), readonly=True, kind="int"),
    }


def charger_keys(config: ChargerConfig) -> dict[str, Key]:
    """Every key a charger configured by ``config`` starts with."""
    return {
        **default_keys(
            config.connectors,
            int(config.heartbeat_interval_s or 0),
            config.meter_interval_s,
            config.transaction_message_attempts,
            config.transaction_message_retry_s,
        ),
        **security_keys(config.security_profile, config.authorization_key, config.cpo_name),
    }


class Configuration:
    """The key/value store behind GetConfiguration and ChangeConfiguration."""

    def __init__(self, keys: dict[str, Key]) -> None:
        self._keys = keys

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None when the key is unknown."""
        key = self._keys.get(name)
        return None if key is None else key.value

    def get_int(self, name: str, default: int = 0) -> int:
        """An integer key's value (``default`` when unknown or not a number)."""
        try:
            return int(self.get(name) or default)
        except ValueError:
            return default

    def get_bool(self, name: str) -> bool:
        """A boolean key's value (False when unknown)."""
        return (self.get(name) or "").lower() == "true"

    def report(self, names: list[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """``(configurationKey, unknownKey)``; every key when ``names`` is empty (write-only
        keys without their value)."""
        wanted = names or list(self._keys)
        known: list[dict[str, object]] = []
        unknown: list[str] = []
        for name in wanted:
            key = self._keys.get(name)
            if key is None:
                unknown.append(name)
            else:
                value = None if key.writeonly else key.value
                known.append({"key": name, "readonly": key.readonly, "value": value})
        return known, unknown

    def change(self, name: str, value: str) -> str:
        """Apply ChangeConfiguration; the ConfigurationStatus (Accepted/Rejected/NotSupported)."""
        key = self._keys.get(name)
        if key is None:
            return "NotSupported"
        if key.readonly:
            return "Rejected"
        if key.kind == "int":
            try:
                if int(value) < 0:
                    return "Rejected"
            except ValueError:
                return "Rejected"
        elif key.kind == "bool" and value.lower() not in ("true", "false"):
            return "Rejected"
        elif key.kind == "password" and not 16 <= len(value) <= 40:
            return "Rejected"  # A00.FR.205: at least 16 bytes, at most 40 hexadecimal digits
        key.value = value
        return "Accepted"
