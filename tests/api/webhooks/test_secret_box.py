"""Signing secrets at rest: sealed with the configured key, several keys for rotation, and
no API process without a key unless the development key is asked for out loud."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from api.webhooks.secret_box import SecretBox
from services.errors import ConfigurationError
from services.settings import Settings


def test_a_secret_is_sealed_and_a_rotated_key_still_opens_it() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = SecretBox.from_settings(Settings(webhook_secret_key=old))
    sealed = before.seal("whsec_abc")
    assert "whsec_abc" not in sealed and before.open(sealed) == "whsec_abc"
    after = SecretBox.from_settings(Settings(webhook_secret_key=f"{new}, {old}"))
    assert after.open(sealed) == "whsec_abc"
    rotated = after.rotate(sealed)
    assert SecretBox.from_settings(Settings(webhook_secret_key=new)).open(rotated) == "whsec_abc"
    with pytest.raises(ConfigurationError, match="no longer holds"):
        SecretBox.from_settings(Settings(webhook_secret_key=new)).open(sealed)


def test_no_key_is_refused_and_a_bad_one_named(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigurationError, match="GRIDLINK_WEBHOOK_SECRET_KEY is not set"):
        SecretBox.from_settings(Settings())
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        SecretBox.from_settings(Settings(webhook_secret_key="short"))
    with caplog.at_level(logging.WARNING, logger="gridlink.api.webhooks"):
        box = SecretBox.from_settings(Settings(webhook_dev_key=True))
    assert box.open(box.seal("s")) == "s"
    assert "DEVELOPMENT key" in caplog.text


def test_the_api_process_does_not_start_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLINK_")}
    result = subprocess.run([sys.executable, "-m", "api"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "api: GRIDLINK_WEBHOOK_SECRET_KEY is not set: webhook signing secrets are stored "
        "encrypted with it (`python -m api.webhooks.secret_box` prints a key; "
        "GRIDLINK_WEBHOOK_DEV_KEY=true uses an insecure development key)"]
