"""Looking things up in rendered Kubernetes manifests: resources (plain dicts) by kind, pod specs.

The rendering itself is ``kubectl kustomize`` (``sources.rendered``); these helpers only read
its output.
"""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    """The resources of one kind, by ``metadata.name``."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_spec(resource: Resource) -> dict[str, Any]:
    """The pod template's spec of a Deployment, StatefulSet or Job."""
    return resource["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (number or containerPort name) as a number."""
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in container["ports"]], port
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named, f"container {container['name']} has no port named {port!r}"
    return int(named[port])
