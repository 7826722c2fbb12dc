"""Which frames a fleet checks against the OCPP 1.6 schemas (``--validate all|first|off``)."""

from __future__ import annotations


class Validation:
    """Which frames are checked against the 1.6 schemas, shared by a whole fleet.

    ``all`` checks every CALL sent and every CALLRESULT received; ``first`` checks the first
    few of each kind (cheap enough for thousands of chargers); ``off`` checks none.
    CALLs from the CSMS are always checked, because the reply depends on it.
    """

    def __init__(self, mode: str = "all", first: int = 3) -> None:
        if mode not in ("all", "first", "off"):
            raise ValueError(f"validation mode must be all, first or off, not {mode!r}")
        self.mode = mode
        self._first = first
        self._seen: dict[tuple[int, str], int] = {}

    def wanted(self, message_type: int, action: str) -> bool:
        """Whether this frame should be checked."""
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        key = (message_type, action)
        seen = self._seen.get(key, 0)
        if seen >= self._first:
            return False
        self._seen[key] = seen + 1
        return True


__all__ = ["Validation"]
