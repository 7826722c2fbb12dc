"""The settings of the webhook delivery worker (the API process, ``api/webhooks``;
docs/webhooks.md), ``GRIDLINK_WEBHOOK_*``: a part of :class:`services.settings.Settings`,
kept apart because it is one concern of one component."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    """Webhook delivery: the key of the secrets at rest, URL safety, timeouts, retries."""

    model_config = SettingsConfigDict(env_prefix="GRIDLINK_", extra="ignore")

    webhook_secret_key: SecretStr | None = Field(
        None, description="api: Fernet key(s) (comma-separated, the first encrypts, all "
        "decrypt: rotation) that encrypt the webhook subscriptions' signing secrets at rest; "
        "`python -m api.webhooks.secret_box` prints a new one. Unset: the API process refuses "
        "to start, unless GRIDLINK_WEBHOOK_DEV_KEY.")
    webhook_dev_key: bool = Field(
        False, description="api: development only: without GRIDLINK_WEBHOOK_SECRET_KEY, "
        "encrypt webhook secrets with a fixed development key (anyone can decrypt them); "
        "logged at WARNING. `gridlink run all` generates a key instead.")
    webhook_allow_private_urls: bool = Field(
        False, description="api: let webhook URLs reach loopback, private, link-local and "
        "other non-public addresses (a receiver on this machine). Development only; "
        "`make run` sets it and says so. Checked at creation and before every attempt.")
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=120, description="api: the longest one webhook attempt may take "
        "(connect, send, read the answer).")
    webhook_max_attempts: int = Field(
        12, ge=1, le=100, description="api: attempts of one delivery before it is failed.")
    webhook_max_age_s: float = Field(
        86400.0, gt=0, description="api: a delivery not delivered this long after its event "
        "is failed (no further attempt).")
    webhook_backoff_base_s: float = Field(
        5.0, gt=0, description="api: the wait before a delivery's second attempt; doubled "
        "for each further one (with jitter), up to GRIDLINK_WEBHOOK_BACKOFF_MAX_S.")
    webhook_backoff_max_s: float = Field(
        3600.0, gt=0, description="api: the longest wait between two attempts.")
    webhook_lease_s: float = Field(
        60.0, gt=0, description="api: how long an API process holds a delivery it is "
        "attempting; if it dies meanwhile, another takes the delivery after this (more than "
        "GRIDLINK_WEBHOOK_TIMEOUT_S).")
    webhook_concurrency: int = Field(
        8, ge=1, le=256, description="api: webhook attempts one API process makes at once.")
    webhook_poll_interval_s: float = Field(
        1.0, gt=0, description="api: how often the delivery worker looks for due retries "
        "(new events are attempted at once).")
    webhook_max_response_bytes: int = Field(
        4096, ge=0, description="api: how much of a receiver's answer is read (the rest is "
        "ignored; 256 characters are kept in the delivery log).")
    retention_webhook_deliveries_days: float = Field(
        30, ge=0, description="api: days the webhook delivery log is kept (from a delivery's "
        "event); 0 keeps it forever.")

    @field_validator("webhook_secret_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        """A deployment sets every variable; an empty one means "not configured"."""
        return None if value == "" else value

    @field_validator("webhook_lease_s")
    @classmethod
    def _lease_outlasts_an_attempt(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("webhook_timeout_s")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than GRIDLINK_WEBHOOK_TIMEOUT_S ({timeout:g}), "
                             "or a delivery could be attempted twice at once")
        return value
