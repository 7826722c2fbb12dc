"""authz: station registry (BootNotification, Heartbeat, handshake admission), Authorize,
DataTransfer."""
