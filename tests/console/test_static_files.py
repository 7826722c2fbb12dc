"""The console's files keep to what its Content-Security-Policy and its XSS rule promise:
no inline script or style in the page, and no HTML-parsing sink for data in the modules
(everything from the API goes in as text: ``textContent``, ``createTextNode``)."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

import pytest

from api.console import SECURITY_HEADERS, STATIC_DIR

MODULES = sorted(STATIC_DIR.rglob("*.js"))

#: Ways to turn a string into markup or code; none may appear in the console's modules.
SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
         "new Function", "createContextualFragment", "setHTMLUnsafe", "srcdoc",
         "javascript:")


def test_there_are_modules_to_check() -> None:
    names = {path.name for path in MODULES}
    assert {"app.js", "api.js", "dom.js", "commands.js"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(STATIC_DIR).as_posix())
def test_modules_use_no_html_sink(path: Path) -> None:
    text = path.read_text()
    found = [sink for sink in SINKS if sink in text]
    assert not found, f"{path.name} uses {found}: render API values with DOM text APIs"
    # string timers compile code too
    assert not re.search(r"set(Timeout|Interval)\(\s*['\"`]", text), path.name


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.problems.append("a <style> element")
        if "style" in names:
            self.problems.append(f"a style attribute on <{tag}>")
        self.problems += [f"{name} on <{tag}>" for name in names if name.startswith("on")]
        if tag == "script":
            source = dict(attrs).get("src")
            if not source:
                self.problems.append("an inline <script>")
            else:
                self.scripts.append(source)
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script text inline")


def test_page_needs_nothing_inline() -> None:
    page = _Page()
    page.feed((STATIC_DIR / "index.html").read_text())
    assert page.problems == []
    assert page.scripts == ["js/app.js"]


def test_policy_allows_only_this_origin() -> None:
    policy = dict(part.strip().split(" ", 1)
                  for part in SECURITY_HEADERS["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in SECURITY_HEADERS["Content-Security-Policy"]
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


def test_every_console_file_is_package_data() -> None:
    """pyproject's package-data for api.console covers every file (else the wheel and the
    image would serve a console with files missing)."""
    with (STATIC_DIR.parents[2] / "pyproject.toml").open("rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["package-data"]["api.console"]
    package = STATIC_DIR.parent
    for path in STATIC_DIR.rglob("*"):
        if path.is_dir() or path.suffix == ".pyc":
            continue
        relative = PurePosixPath(path.relative_to(package).as_posix())
        assert any(len(PurePosixPath(p).parts) == len(relative.parts) and relative.match(p)
                   for p in patterns), f"{relative} is not in package-data {patterns}"
