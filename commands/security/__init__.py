"""Security extension (OCPP 1.6 Security Whitepaper ed. 2): certificates, security events,
ExtendedTriggerMessage."""
