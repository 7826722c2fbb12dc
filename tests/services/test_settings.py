"""Settings: read once, one clear line for a bad value, every one documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.errors import ConfigurationError
from services.settings import Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `(GRIDLINK_[A-Z0-9_]+)` \|", README.read_text(), re.M))
    settings = {f"GRIDLINK_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from README.md's table"
    assert documented - settings == set(), "README.md documents settings that do not exist"


def test_a_bad_value_is_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="GRIDLINK_GATEWAY_PORT"):
        load_settings(gateway_port="nine thousand")


def test_empty_tls_files_mean_no_tls() -> None:
    settings = load_settings(tls_cert_file="", tls_key_file="")
    assert settings.tls_cert_file is None and not settings.tls
    assert load_settings(tls_cert_file="c.pem", tls_key_file="k.pem").tls


def test_empty_charger_ca_files_mean_no_charger_ca() -> None:
    settings = load_settings(charger_ca_cert_file="", charger_ca_key_file="")
    assert settings.charger_ca_cert_file is None and not settings.charger_ca
    assert load_settings(charger_ca_cert_file="ca.pem", charger_ca_key_file="ca.key").charger_ca
    with pytest.raises(ConfigurationError, match="GRIDLINK_CHARGER_CERT_DAYS"):
        load_settings(charger_cert_days=0)
