"""The client's AMQP user_id: exactly the user RabbitMQ authenticates (or it refuses)."""

from __future__ import annotations

import pytest

from gridlink.client import amqp_user, result_wait_s
from services.envelope import COMMAND_DEADLINE_GRACE_S, COMMAND_SWEEP_S


@pytest.mark.parametrize(("url", "user"), [
    ("amqp://guest:guest@127.0.0.1:5672/", "guest"),
    ("amqps://gridlink%40ops:s%3Acret@rabbitmq.internal:5671/gridlink", "gridlink@ops"),
    ("amqp://a+b%20c:pw@host/", "a+b c"),
    ("amqp://127.0.0.1/", "guest"),  # aio-pika logs in as guest when the URL names nobody
    ("amqp://:pw@127.0.0.1/", "guest"),
    ("amqps://rabbitmq.internal:5671/?auth=EXTERNAL", None),  # the certificate names it
])
def test_the_user_id_is_the_user_of_the_url(url: str, user: str | None) -> None:
    assert amqp_user(url) == user


@pytest.mark.parametrize("expires_in_s", [None, 30.0])
def test_a_requester_waits_past_the_services_own_deadline_for_the_command(
        expires_in_s: float | None) -> None:
    """Regression (found by the command-storm fault scenario): the requester waited
    ``timeout_s`` + 5 s, exactly the commands service's deadline grace, so a command whose
    gateway vanished got no status at all when the service's sweep (every second) came after
    the requester had given up."""
    timeout_s = 20.0
    latest_end = timeout_s + (expires_in_s or 0) + COMMAND_DEADLINE_GRACE_S + COMMAND_SWEEP_S
    assert result_wait_s(timeout_s, expires_in_s) > latest_end
