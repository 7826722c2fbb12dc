"""The container image: Dockerfile shape, and a build context that `pip install .` works from.

No Docker engine is needed: the build context is reproduced from .dockerignore and the
builder stage's `pip install .` is replayed on it (as a wheel build) outside a container.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy import sources

BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "python3-dev", "libc6-dev", "git")


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    stages = sources.dockerfile_stages()
    assert len(stages) >= 2
    args = dict(a.split("=", 1) for n, a in sources.dockerfile_instructions() if n == "ARG"
                and "=" in a)
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    builder = stages[0]
    assert builder[0][1].split()[-1] == "builder"
    assert any("pip install ." in a for n, a in builder if n == "RUN")


def test_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    final = sources.dockerfile_stages()[-1]
    for name, args in final:
        if name == "RUN":
            assert "apt-get install" not in args and "pip install" not in args, args
            assert not any(re.search(rf"\b{re.escape(t)}\b", args) for t in BUILD_TOOLS), args
        if name in ("COPY", "ADD"):
            assert args.startswith("--from=builder "), f"final stage copies {args!r}"
    copies = [a for n, a in final if n == "COPY"]
    assert copies == ["--from=builder /opt/gridlink /opt/gridlink"]
    (user,) = [a for n, a in final if n == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    env = " ".join(a for n, a in final if n == "ENV")
    assert "PATH=/opt/gridlink/bin:" in env


def test_image_runs_gridlink_run_component() -> None:
    final = sources.dockerfile_stages()[-1]
    entrypoint = sources.exec_form(final, "ENTRYPOINT")
    command = sources.exec_form(final, "CMD")
    assert entrypoint == ["gridlink"]
    assert entrypoint + (command or []) == ["gridlink", "run", "gateway"]
    exposed = {int(p) for n, a in final if n == "EXPOSE" for p in a.split()}
    assert exposed == {9000, 9100, 9180}  # OCPP, metrics/probes, the file server


def _docker_ignored(patterns: list[tuple[bool, str]], relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in patterns:
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(
                    candidate.rsplit("/", 1)[-1], pattern[3:])):
                ignored = not negated
                break
    return ignored


def build_context() -> list[str]:
    """Files `docker build .` would send, by .dockerignore."""
    patterns = []
    for line in (sources.ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    files = []
    for path in sorted(sources.ROOT.rglob("*")):
        relative = path.relative_to(sources.ROOT).as_posix()
        if relative.startswith((".git/", ".venv/")) or not path.is_file():
            continue
        if not _docker_ignored(patterns, relative):
            files.append(relative)
    return files


def test_build_context_holds_the_packages_and_nothing_else() -> None:
    project = tomllib.loads((sources.ROOT / "pyproject.toml").read_text())
    context = build_context()
    top = {f.split("/")[0] for f in context}
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    present = {p for p in packages if (sources.ROOT / p / "__init__.py").is_file()}
    assert present <= top, f"packages left out of the image: {sorted(present - top)}"
    assert "pyproject.toml" in context
    readme = project["project"].get("readme")
    if readme:
        assert readme in context
    assert not top - packages - {"pyproject.toml", "README.md", "LICENSE"}, sorted(top)
    assert not [f for f in context if "__pycache__" in f or f.endswith(".pyc")]


def test_dockerignore_matcher() -> None:
    patterns = [(False, "*"), (True, "services"), (False, "**/__pycache__")]
    assert _docker_ignored(patterns, "tests/test_x.py")
    assert not _docker_ignored(patterns, "services/cli.py")
    assert _docker_ignored(patterns, "services/__pycache__/cli.cpython-311.pyc")


def test_builder_stage_installs_the_gridlink_command(tmp_path: Path) -> None:
    """`pip install .` on the build context yields a wheel with every package and the script.

    With build isolation, as in the image: pip fetches the build backend from the index.
    """
    context = tmp_path / "context"
    for relative in build_context():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((sources.ROOT / relative).read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("gridlink-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    for module in ("gridlink/cli/__init__.py", "gateway/server.py", "authz/__init__.py",
                   "transactions/__init__.py", "commands/__init__.py"):
        assert module in names, f"{module} is not in the image"
    assert re.search(r"^gridlink = gridlink\.cli:main$", scripts, re.M), scripts
    assert not [n for n in names if n.startswith("tests/")]


@pytest.mark.parametrize("name", ["README.md"])
def test_files_the_build_needs_exist(name: str) -> None:
    project = tomllib.loads((sources.ROOT / "pyproject.toml").read_text())
    if project["project"].get("readme") == name:
        assert (sources.ROOT / name).is_file(), f"pip install . needs {name}"
    json.dumps(project)
