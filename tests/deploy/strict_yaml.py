"""YAML loading that refuses what PyYAML silently accepts: duplicate keys.

A duplicated key in a manifest is almost always a mistake (the second ``env:`` or ``ports:``
wins and the first silently disappears), and Kubernetes, kustomize and docker compose differ in
whether they reject it. Merge keys (``<<: *anchor``) may be overridden; that is their purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key in seen:
                raise DuplicateKeyError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                    f"(first at line {seen[key].start_mark.line + 1})"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    return yaml.load(text, Loader=StrictLoader)


def load_all(text: str) -> list[Any]:
    """Every non-empty document of a multi-document YAML text."""
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc is not None]


def load_file(path: Path) -> Any:
    return load(path.read_text())


def load_all_file(path: Path) -> list[Any]:
    return load_all(path.read_text())
