"""The feature packages of the commands service, in the order their hooks run.

Each package holds its rules (pure), its repository (MongoDB) and its hooks; its
``hooks.register(hooks, commands)`` wires it into the command path. The order matters where
two features hook the same action: load management and smart charging both check
SetChargingProfile (load management first, so a profile that would override its limit is
refused for that reason) and both follow ClearChargingProfile answers; core and credentials
both check and follow ChangeConfiguration (core keeps the snapshot, credentials the
station's password and profile).
"""

from __future__ import annotations

from collections.abc import Callable

from commands.core import hooks as core
from commands.credentials import hooks as credentials
from commands.files import hooks as files
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.load_management import hooks as load_management
from commands.local_list import hooks as local_list
from commands.reservations import hooks as reservations
from commands.security import hooks as security
from commands.smart_charging import hooks as smart_charging

Register = Callable[[CommandHooks, Lifecycle], None]

FEATURES: tuple[tuple[str, Register], ...] = (
    ("core", core.register),
    ("credentials", credentials.register),
    ("files", files.register),
    ("load_management", load_management.register),
    ("local_list", local_list.register),
    ("reservations", reservations.register),
    ("smart_charging", smart_charging.register),
    ("security", security.register),
)
