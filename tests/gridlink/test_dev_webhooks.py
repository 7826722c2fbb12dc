"""``gridlink run all`` and the webhooks: a development key made once, kept private and
reused, and said out loud; a configured key is left alone."""

from __future__ import annotations

import stat
from pathlib import Path

from api.webhooks.secret_box import SecretBox
from gridlink.dev_webhooks import KEY_FILE, development_key
from services.settings import Settings


def test_a_development_key_is_made_once_kept_private_and_announced(tmp_path: Path) -> None:
    changes, lines = development_key(Settings(), tmp_path)
    again, _ = development_key(Settings(), tmp_path)
    key = changes["webhook_secret_key"]
    assert again == changes  # the same key after a restart: sealed secrets still open
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    box = SecretBox.from_settings(Settings(webhook_secret_key=key))
    assert box.open(box.seal("whsec_x")) == "whsec_x"
    assert any("development key" in line and KEY_FILE in line for line in lines)
    assert not any("private networks" in line for line in lines)


def test_a_configured_key_is_used_and_private_urls_are_announced(tmp_path: Path) -> None:
    changes, lines = development_key(
        Settings(webhook_secret_key="x" * 44, webhook_allow_private_urls=True), tmp_path)
    assert changes == {} and not (tmp_path / KEY_FILE).exists()
    assert [line for line in lines if "WARNING" in line] == [
        "WARNING: webhooks may reach this machine and private networks "
        "(GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS). Development only."]
