"""GridLink's composition root: the ``gridlink`` command, ``gridlink run all``, the embedded
database starter, operator queries, and the public client face for other Python services::

    from gridlink import CommandRequest, CommandResult, send_command

Nothing in GridLink imports this package; it imports the kernel (``services``) and the
components (``gateway``, ``authz``, ``transactions``, ``commands``).
"""

from __future__ import annotations

from gridlink.client import send_command
from services.envelope import CommandRequest, CommandResult

__all__ = ["CommandRequest", "CommandResult", "send_command"]
