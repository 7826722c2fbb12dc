"""GridLink fleet simulator: thousands of simulated OCPP 1.6-J charge points in one process.

``gridlink simulate`` (see :mod:`simulator.cli`) drives a :class:`~simulator.fleet.Fleet` of
:class:`~simulator.charger.Charger` state machines over WebSockets and reports per-action
latency percentiles (:mod:`simulator.stats`).
"""

from __future__ import annotations

from simulator.charger import Charger, ChargerConfig, Validation
from simulator.stats import Stats

__all__ = ["Charger", "ChargerConfig", "Stats", "Validation"]
