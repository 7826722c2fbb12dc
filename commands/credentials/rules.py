"""Security configuration rules without I/O: what a ChangeConfiguration of AuthorizationKey
(Security Whitepaper A01) or SecurityProfile (A05, TC_083) must satisfy before it is sent,
and which answers make GridLink take the change."""

from __future__ import annotations

from dataclasses import dataclass

from services import stations
from services.errors import Refusal
from services.settings import Settings

AUTHORIZATION_KEY, SECURITY_PROFILE = "AuthorizationKey", "SecurityProfile"
_KEYS = {key.lower(): key for key in (AUTHORIZATION_KEY, SECURITY_PROFILE)}
#: Answers after which the charger uses the new value (RebootRequired: after its reboot).
#: Rejected and NotSupported change nothing (A01.FR.04, A05.FR.01-04).
TAKEN = frozenset({"Accepted", "RebootRequired"})


def security_key(key: str) -> str | None:
    """The security configuration key ``key`` names (CiString50: any case), or None."""
    return _KEYS.get(key.lower())


@dataclass(frozen=True)
class Offered:
    """What GridLink's listeners can give a charger, as far as the profiles care."""

    tls: bool  # TLS at the gateway, or at a trusted proxy in front of it (profiles 2, 3)
    client_certificates: bool  # client certificates verified (profile 3)

    @classmethod
    def from_settings(cls, settings: Settings) -> Offered:
        proxies = bool(settings.tls_trusted_proxies)  # TLS ends there, certificates too
        # The commands pods need not hold the gateway's certificate: chargers told to use
        # wss:// (GRIDLINK_PUBLIC_URL) are offered TLS.
        told_wss = (settings.public_url or "").lower().startswith("wss://")
        return cls(tls=settings.tls or proxies or told_wss,
                   client_certificates=bool(settings.tls_client_ca_file) or proxies)


def authorization_key_problem(value: str) -> Refusal | None:
    """An AuthorizationKey is 16 to 40 characters, without control characters."""
    problem = stations.key_problem(value)
    return None if problem is None else ("PropertyConstraintViolation", problem)


def parse_profile(value: str) -> int | None:
    """A SecurityProfile value as a profile number (0-3), or None."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) not in stations.PROFILES:
        return None
    return int(text)


def profile_change_problem(value: str, *, current: int, has_password: bool,
                           offered: Offered) -> Refusal | None:
    """Upwards only (A05 remark), and only to a profile whose prerequisites GridLink can
    see: a password for 1 and 2, TLS for 2 and 3, client certificates for 3."""
    profile = parse_profile(value)
    if profile is None:
        return ("PropertyConstraintViolation", "SecurityProfile is an integer from 0 to 3")
    if profile <= current:
        return ("PropertyConstraintViolation",
                f"the station uses security profile {current}: changing to a lower or the "
                "same Security Profile over OCPP is not allowed (for security reasons, A05)")
    if profile in (1, 2) and not has_password:
        return ("PropertyConstraintViolation",
                f"security profile {profile} authenticates with a password: set an "
                "AuthorizationKey first")
    if profile in (2, 3) and not offered.tls:
        return ("PropertyConstraintViolation",
                f"security profile {profile} needs TLS, and GridLink serves none "
                "(GRIDLINK_TLS_CERT_FILE and GRIDLINK_TLS_KEY_FILE, or a TLS-terminating "
                "proxy in GRIDLINK_TLS_TRUSTED_PROXIES)")
    if profile == 3 and not offered.client_certificates:
        return ("PropertyConstraintViolation",
                "security profile 3 needs client certificates, and GridLink verifies none "
                "(GRIDLINK_TLS_CLIENT_CA_FILE, or a proxy in GRIDLINK_TLS_TRUSTED_PROXIES)")
    return None
