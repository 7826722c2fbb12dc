"""GridLink's shared runtime: settings, bus, store, OCPP 1.6 models, metrics, logging, CLI."""
