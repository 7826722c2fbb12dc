"""The pure checks: numbers a sampled value holds, energies, register readings."""

from __future__ import annotations

import pytest

from transactions import checks


@pytest.mark.parametrize(("raw", "expected"), [
    ("12.5", (12.5, [])), ("-3", (-3.0, [])), (" 7 ", (7.0, [])), ("1e3", (1000.0, [])),
    (".5", (0.5, [])), ("NaN", (None, ["not_finite"])), ("nan", (None, ["not_finite"])),
    ("inf", (None, ["not_finite"])), ("-Infinity", (None, ["not_finite"])),
    ("1e999", (None, ["not_finite"])), ("abc", (None, ["not_a_number"])),
    ("1_000", (None, ["not_a_number"])), ("", (None, ["not_a_number"])),
    ("0x10", (None, ["not_a_number"])),
])
def test_the_number_a_raw_value_holds(raw: str, expected: tuple[float | None, list[str]]
                                      ) -> None:
    assert checks.sample_number(raw, None) == expected
    assert checks.sample_number(raw, "Raw") == expected


def test_signed_data_is_never_read_as_a_number() -> None:
    assert checks.sample_number("1200", "SignedData") == (None, [])


def test_energy_is_never_negative() -> None:
    assert checks.energy_wh(1000, 1750) == 750
    assert checks.energy_wh(1000, 1000) == 0
    assert checks.energy_wh(1000, 999) is None
    assert checks.energy_wh(-20, -5) == 15


def test_energy_from_an_absurd_reading_is_none_not_an_unstorable_number() -> None:
    assert checks.energy_wh(0, 1e300) is None  # a finite sampled value (superseded energy)
    assert checks.energy_wh(-(2**62), 2**62 - 1) == 2**63 - 1  # the codec's meter bounds
    assert checks.energy_wh(0, float(2**64)) is None


def test_register_readings_in_wh() -> None:
    register = {"measurand": "Energy.Active.Import.Register", "value_num": 1.5}
    assert checks.register_wh({**register, "unit": "kWh"}) == 1500
    assert checks.register_wh(register) == 1.5  # Wh by default
    assert checks.register_wh({**register, "unit": "varh"}) is None
    assert checks.register_wh({**register, "flags": ["negative_value"]}) is None
    assert checks.register_wh({"measurand": "Voltage", "value_num": 230}) is None
