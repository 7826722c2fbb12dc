"""A small kustomize renderer for the features GridLink's manifests use, in Python.

Supported: ``resources`` (files and kustomization directories), ``configMapGenerator`` and
``secretGenerator`` (``files``, ``literals``; name hashes must be disabled), ``generatorOptions``,
``patches`` (strategic-merge patch files, list items merged by ``name``), ``images`` and
``namespace``. Anything else in a kustomization.yaml is an error, so a manifest change that
needs more is noticed here rather than rendered wrongly. tests/deploy compares the result with
``kubectl kustomize`` where kubectl is installed.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

from tests.deploy import strict_yaml

SUPPORTED = {
    "apiVersion", "kind", "resources", "configMapGenerator", "secretGenerator",
    "generatorOptions", "patches", "images", "namespace",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "APIService"}

Resource = dict[str, Any]


class KustomizeError(Exception):
    pass


def render(directory: Path) -> list[Resource]:
    """The resources ``kubectl kustomize DIRECTORY`` would print (order aside)."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = strict_yaml.load_file(kfile)
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: fields this renderer does not implement: {sorted(unknown)}")

    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources += render(path)
        else:
            if directory.resolve() not in path.parents:
                raise KustomizeError(f"{kfile}: file {entry} is outside the kustomization root")
            resources += strict_yaml.load_all_file(path)

    options = spec.get("generatorOptions", {})
    for generator in spec.get("configMapGenerator", []):
        resources.append(_generate("ConfigMap", generator, options, directory))
    for generator in spec.get("secretGenerator", []):
        resources.append(_generate("Secret", generator, options, directory))

    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{kfile}: only strategic-merge patch files are supported")
        for document in strict_yaml.load_all_file(directory / patch["path"]):
            target = _find(resources, document)
            merged = _merge(copy.deepcopy(target), document)
            target.clear()
            target.update(merged)

    for image in spec.get("images", []):
        for resource in resources:
            for container in _containers(resource):
                _set_image(container, image)

    namespace = spec.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = namespace
    return resources


def _find(resources: list[Resource], patch: Resource) -> Resource:
    matches = [r for r in resources
               if r["kind"] == patch["kind"] and r["apiVersion"] == patch["apiVersion"]
               and r["metadata"]["name"] == patch["metadata"]["name"]]
    if len(matches) != 1:
        raise KustomizeError(
            f"patch for {patch['kind']}/{patch['metadata']['name']} "
            f"matches {len(matches)} resources")
    return matches[0]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge: maps merge recursively, lists of named items merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged_list = [copy.deepcopy(item) for item in base]
        names = [item["name"] for item in merged_list]
        for item in patch:
            if item["name"] in names:
                index = names.index(item["name"])
                merged_list[index] = _merge(merged_list[index], item)
            else:
                merged_list.append(item)
        return merged_list
    return patch


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _generate(kind: str, generator: dict[str, Any], options: dict[str, Any],
              directory: Path) -> Resource:
    merged_options = {**options, **generator.get("options", {})}
    if not merged_options.get("disableNameSuffixHash"):
        raise KustomizeError(f"{kind} {generator['name']}: name hashes are not implemented")
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for file in generator.get("files", []):
        key, _, source = file.partition("=") if "=" in file else (Path(file).name, "", file)
        path = (directory / source).resolve()
        if directory.resolve() not in path.parents:
            raise KustomizeError(f"{kind} {generator['name']}: {file} is outside the root")
        data[key] = path.read_text()
    metadata: dict[str, Any] = {"name": generator["name"]}
    if merged_options.get("labels"):
        metadata["labels"] = dict(merged_options["labels"])
    if merged_options.get("annotations"):
        metadata["annotations"] = dict(merged_options["annotations"])
    resource: Resource = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
    if kind == "Secret":
        resource["type"] = generator.get("type", "Opaque")
        resource["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        resource["data"] = data
    return resource


def _containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") \
        or spec.get("template", {}).get("spec") or {}
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def _set_image(container: dict[str, Any], image: dict[str, str]) -> None:
    current = container.get("image", "")
    name, _, tag = current.partition("@")[0].rpartition(":")
    if not name or "/" in tag:  # no tag at all ("gridlink", "host:5000/gridlink")
        name, tag = current, ""
    if name != image["name"]:
        return
    new_name = image.get("newName", name)
    new_tag = image.get("newTag", tag)
    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def pod_spec(resource: Resource) -> dict[str, Any]:
    """The pod template's spec of a Deployment, StatefulSet or Job."""
    return resource["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}
