"""The chargers attached to this gateway pod: the current session and socket per station,
and notes of the stations another pod took over lately. No I/O.

The newest connection of a station wins: registering a session returns the one it replaces,
and a session is forgotten only while it is still the station's current one.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from websockets.asyncio.server import ServerConnection

from gateway.session import Session

MOVED_NOTES_MAX = 1000  # above this many notes, those older than MOVED_NOTE_S are dropped
MOVED_NOTE_S = 60.0


class Attached(NamedTuple):
    """A station's current connection on this pod."""

    session: Session
    connection: ServerConnection


class Registry:
    """Sessions by station id, and the stations that moved to another pod."""

    def __init__(self) -> None:
        self._attached: dict[str, Attached] = {}
        self._moved: dict[str, float] = {}  # station -> when another pod took it over

    def __len__(self) -> int:
        return len(self._attached)

    def get(self, station: str) -> Attached | None:
        """The station's current connection here, if any."""
        return self._attached.get(station)

    def profile(self, station: str) -> int | None:
        """The security profile the station's connection here met, if it has one."""
        attached = self._attached.get(station)
        return None if attached is None else attached.session.profile

    def connections(self) -> list[ServerConnection]:
        """The open sockets, oldest registration first (a copy)."""
        return [attached.connection for attached in self._attached.values()]

    def register(self, session: Session, connection: ServerConnection) -> Attached | None:
        """Make this the station's current connection; the one it replaces, if any."""
        previous = self._attached.get(session.station)
        self._attached[session.station] = Attached(session, connection)
        self._moved.pop(session.station, None)
        return previous

    def forget(self, session: Session) -> bool:
        """Drop the session if it is still the station's current one."""
        attached = self._attached.get(session.station)
        if attached is not None and attached.session is session:
            del self._attached[session.station]
            return True
        return False

    def remember_moved(self, station: str) -> None:
        """Note that another pod took ``station``; forget such notes after a minute."""
        now = time.monotonic()
        self._moved[station] = now
        if len(self._moved) > MOVED_NOTES_MAX:
            for key, at in list(self._moved.items()):
                if now - at > MOVED_NOTE_S:
                    del self._moved[key]

    def moved(self, station: str) -> bool:
        """Another pod took ``station`` over (and it has not connected here since)."""
        return station in self._moved
