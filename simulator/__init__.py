"""GridLink fleet simulator: thousands of simulated OCPP 1.6-J charge points in one process.

``gridlink simulate`` (see :mod:`simulator.cli`) drives a :class:`~simulator.fleet.Fleet` of
:class:`~simulator.charger.Charger` state machines over WebSockets and reports per-action
latency percentiles (:mod:`simulator.stats`); the chargers connect with security profiles
1-3 and answer the 1.6 security extension (``simulator/README.md``).  The simulator imports
nothing of GridLink: it tests it from the outside, with its own 1.6 vocabulary
(:mod:`simulator.actions`, :mod:`simulator.frames`) and errors (:mod:`simulator.errors`).
"""

from __future__ import annotations

from simulator.charger import Charger, Registration
from simulator.charger_config import ChargerConfig
from simulator.connectors import Phase
from simulator.errors import FrameError, PayloadError, SimulatorError, Unreachable
from simulator.fleet import Fleet
from simulator.plan import FleetPlan
from simulator.stats import Stats
from simulator.validation import Validation

__all__ = [
    "Charger",
    "ChargerConfig",
    "Fleet",
    "FleetPlan",
    "FrameError",
    "PayloadError",
    "Phase",
    "Registration",
    "SimulatorError",
    "Stats",
    "Unreachable",
    "Validation",
]
