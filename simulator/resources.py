"""Process resource limits a large fleet (or a benchmark) needs."""

from __future__ import annotations

import resource


def raise_file_limit(wanted: int | None = None) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (or ``wanted``); return the new soft.

    Each simulated charger holds one socket, so a fleet of N needs N + a few descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
