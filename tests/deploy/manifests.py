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
