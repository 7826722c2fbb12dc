"""GridLink's components: the only place that names all five.

Each runs by itself as ``python -m <name>`` (its ``__main__``), in production one per
container; ``gridlink run all`` starts them in this order, as child processes.
"""

from __future__ import annotations

from services.entry import Main

NAMES = ("authz", "transactions", "commands", "gateway", "api")
#: The components that consume service queues ({ns}.<name>, {ns}.<name>.rpc).
SERVICES = ("authz", "transactions", "commands")


def main_of(name: str) -> Main:
    """The coroutine that runs component ``name`` (imported only when it is run)."""
    if name == "authz":
        from authz.service import main
    elif name == "transactions":
        from transactions.service import main
    elif name == "commands":
        from commands.service import main
    elif name == "gateway":
        from gateway.server import run_gateway as main
    elif name == "api":
        from api.server import run_api as main
    else:
        raise ValueError(f"no component {name!r}")
    return main
