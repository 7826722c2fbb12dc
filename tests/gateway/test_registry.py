"""The registry of attached stations: newest connection wins, stale sessions leave nothing."""

from __future__ import annotations

from typing import cast

from websockets.asyncio.server import ServerConnection

from gateway.registry import Registry
from gateway.session import Session


def socket(name: str) -> ServerConnection:
    return cast(ServerConnection, name)  # the registry only stores it


def test_newest_connection_wins_and_the_old_one_cannot_forget_it() -> None:
    registry = Registry()
    old, new = Session("S"), Session("S")
    assert registry.register(old, socket("a")) is None
    previous = registry.register(new, socket("b"))
    assert previous is not None and previous.session is old
    assert registry.forget(old) is False  # the old handler ends after the takeover
    attached = registry.get("S")
    assert attached is not None and attached.session is new
    assert registry.forget(new) is True
    assert registry.get("S") is None and len(registry) == 0


def test_connections_keep_the_order_of_first_registration() -> None:
    registry = Registry()
    registry.register(Session("A"), socket("a1"))
    registry.register(Session("B"), socket("b"))
    registry.register(Session("A"), socket("a2"))  # replaces A in place
    assert registry.connections() == ["a2", "b"]


def test_a_moved_note_lasts_until_the_station_connects_here_again() -> None:
    registry = Registry()
    registry.remember_moved("S")
    assert registry.moved("S") and not registry.moved("T")
    registry.register(Session("S"), socket("a"))
    assert not registry.moved("S")
