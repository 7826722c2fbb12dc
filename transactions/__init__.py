"""transactions: StartTransaction, StopTransaction, MeterValues, StatusNotification."""
