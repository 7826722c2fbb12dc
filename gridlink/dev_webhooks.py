"""What ``gridlink run all`` (``make run``) does for the API's webhooks on a developer's
machine, and says out loud: without ``GRIDLINK_WEBHOOK_SECRET_KEY`` it makes a key once,
keeps it in the data directory (``.gridlink/webhook-secret.key``, mode 0600, so secrets
sealed yesterday still open today) and gives it to the children; and it warns when webhooks
may reach this machine and private networks (``make run`` allows that, for a local
receiver)."""

from __future__ import annotations

import os
from pathlib import Path

from api.webhooks.secret_box import new_key
from services.settings import Settings

KEY_FILE = "webhook-secret.key"


def development_key(settings: Settings, data: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """The settings to give the children, and the banner's lines about webhooks."""
    lines = []
    changes: dict[str, str] = {}
    if settings.webhook_secret_key is None and not settings.webhook_dev_key:
        path = data / KEY_FILE
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(new_key() + "\n")
        changes["webhook_secret_key"] = path.read_text().strip()
        lines.append(f"WARNING: webhook secrets are encrypted with a development key kept in "
                     f"{path} (GRIDLINK_WEBHOOK_SECRET_KEY is unset). Development only.")
    if settings.webhook_allow_private_urls:
        lines.append("WARNING: webhooks may reach this machine and private networks "
                     "(GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS). Development only.")
    return changes, tuple(lines)
