"""The client's AMQP user_id: exactly the user RabbitMQ authenticates (or it refuses)."""

from __future__ import annotations

import pytest

from gridlink.client import amqp_user


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
