"""The API's resources: one module per resource family, gathered by :mod:`api.routes.core`."""
