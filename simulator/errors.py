"""The simulator's own errors.

The simulator is independent of GridLink (it tests it from the outside), so it keeps its own
small tree instead of GridLink's::

    SimulatorError                  base of every error the simulator raises on purpose
    ├── FrameError(ValueError)      a received text is not an OCPP-J frame (bad JSON, not an
    │                               array, no string id): the frame is counted and dropped
    ├── PayloadError(ValueError)    a payload failed its 1.6 schema; ``code`` is the OCPP 1.6
    │                               CALLERROR code (see :mod:`simulator.frames` for the mapping)
    ├── Unreachable                 no charger of a fleet could connect at all (wrong URL,
    │                               nothing listening, handshake refused): the run gives up
    └── TlsSetupError               a charger's TLS files (client certificate, key, CAs)
                                    cannot be loaded: its connection attempt fails

``FrameError`` and ``PayloadError`` are also ``ValueError`` s: both say that a value (a text,
a payload) is not what OCPP 1.6 allows.
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of the simulator's errors (the tree is drawn in the module docstring)."""


class FrameError(SimulatorError, ValueError):
    """A received text is not an OCPP-J frame (bad JSON, not an array, wrong shape)."""


class PayloadError(SimulatorError, ValueError):
    """A payload failed its 1.6 schema; ``code`` is the OCPP 1.6 CALLERROR code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class Unreachable(SimulatorError):
    """No charger could connect at all (wrong URL, nothing listening, refused handshake)."""


class TlsSetupError(SimulatorError):
    """A charger's TLS files (client certificate, key, CA certificates) cannot be loaded."""


__all__ = ["FrameError", "PayloadError", "SimulatorError", "TlsSetupError", "Unreachable"]
