"""The ``gridlink`` command imports only what the command being run needs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid

import pytest

from gridlink import cli


def _top_level(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in sub._choices_actions}


class _Recorder:
    """Stands in for argparse's subparsers: records the top-level names and help added."""

    def __init__(self) -> None:
        self.added: dict[str, object] = {}

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        self.added[name] = kwargs.get("help")
        return argparse.ArgumentParser()


def test_the_command_table_names_what_every_module_adds() -> None:
    for module, names in cli.COMMANDS.items():
        recorder = _Recorder()
        cli.family(module).add_parsers(
            recorder, argparse.ArgumentParser)
        assert recorder.added == names, module


def test_help_lists_every_command_in_table_order() -> None:
    expected = {name: text for names in cli.COMMANDS.values() for name, text in names.items()}
    assert _top_level(cli.build_parser()) == expected
    assert _top_level(cli.build_parser(full=True)) == expected


@pytest.mark.parametrize("argv", [["tags", "list", "--help"], ["commands", "list", "--help"],
                                  ["reservations", "--help"]])
def test_a_command_gets_its_full_parser(argv: list[str], capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert "usage: gridlink " + " ".join(argv[:-1]) in capsys.readouterr().out


def test_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["nonsense"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nonsense'" in err


def _modules_after(argv: list[str], **env: str) -> set[str]:
    code = ("import sys\nfrom gridlink.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          check=False, env={**os.environ, **env})
    return set(done.stdout.split())


def test_help_imports_no_database_broker_or_codec() -> None:
    loaded = _modules_after(["--help"])
    assert "gridlink.cli" in loaded
    assert not loaded & {"pymongo", "aio_pika", "jsonschema", "ocpp", "pydantic",
                         "services.ocpp16", "gridlink.cli.stations"}


def test_a_command_imports_its_module_only() -> None:
    loaded = _modules_after(["tags", "list", "--help"])
    assert "gridlink.cli.stations" in loaded
    assert not loaded & {"aio_pika", "jsonschema", "gridlink.cli.command",
                         "gridlink.cli.security", "simulator"}


def test_a_command_to_a_charger_loads_neither_the_database_nor_the_schemas(amqp_url: str
                                                                           ) -> None:
    # a namespace no service declared: the command ends at once ("has no exchange")
    loaded = _modules_after(["command", "CP-1", "Reset", '{"type": "Soft"}', "--no-wait"],
                            GRIDLINK_AMQP_URL=amqp_url,
                            GRIDLINK_NAMESPACE=f"nobody-{uuid.uuid4().hex[:8]}")
    assert {"gridlink.cli.command", "aio_pika"} <= loaded
    assert not loaded & {"pymongo", "jsonschema", "ocpp", "services.ocpp16"}
