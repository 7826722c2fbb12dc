"""Site load management: a station group's limit shared among its transactions with
TxProfiles."""
