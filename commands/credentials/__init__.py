"""Station credentials set over OCPP: AuthorizationKey rotation (A01) and security profile
upgrades (A05)."""
