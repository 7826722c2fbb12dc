"""Security configuration: AuthorizationKey rotation (A01) and security profile upgrades (A05)."""
