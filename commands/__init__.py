"""commands: CSMS-initiated calls for other services, and the charger's firmware/diagnostics
status notifications."""
