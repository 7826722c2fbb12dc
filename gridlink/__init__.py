"""GridLink's composition root: the ``gridlink`` command, ``gridlink run all``, the embedded
database starter, operator queries, and the public client face for other Python services::

    from gridlink import CommandRequest, CommandResult, send_command

Nothing in GridLink imports this package; it imports the kernel (``services``) and the
components (``gateway``, ``authz``, ``transactions``, ``commands``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridlink.client import send_command
    from services.envelope import CommandRequest, CommandResult

__all__ = ["CommandRequest", "CommandResult", "send_command"]

# Imported on first use (PEP 562), so that the ``gridlink`` command, which lives in this
# package, does not pay for the broker client and the envelope models when it needs neither.
def __getattr__(name: str) -> Any:
    if name == "send_command":
        from gridlink.client import send_command

        return send_command
    if name in ("CommandRequest", "CommandResult"):
        from services import envelope

        return getattr(envelope, name)
    raise AttributeError(f"module 'gridlink' has no attribute {name!r}")
