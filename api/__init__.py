"""The operator HTTP API: a fifth component (``python -m api``, ``gridlink run api``).

It imports only the kernel (``services``): it reads MongoDB and publishes commands exactly
as the CLI does (:mod:`services.command_requests`); it never talks to chargers.

- :mod:`api.server` runs it (uvicorn, probes, signals); :mod:`api.app` builds the FastAPI
  application from the parts in :mod:`api.features`;
- :mod:`api.context` (what routes share), :mod:`api.auth` (bearer keys and scopes,
  :mod:`api.keys`), :mod:`api.problems` (RFC 9457), :mod:`api.pagination`,
  :mod:`api.audit` (request ids, audit trail), :mod:`api.representations` (ETags);
- :mod:`api.routes`: the resources.
"""
