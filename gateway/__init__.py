"""gateway: OCPP-J protocol and WebSocket transport only (no database, no business rules)."""
