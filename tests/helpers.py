"""Helpers shared by the tests (the only module tests import helpers from, besides the
fixtures in conftest.py, the raw-frame charger in tests/charger.py and the process launcher
in tests/processes.py)."""

from __future__ import annotations

import uuid
from typing import Any

from services.memory import MemoryBus, memory_store
from services.runtime import Service, ServiceRuntime, ServiceSpec
from services.settings import Settings, load_settings
from services.topology import Topology


def new_id(prefix: str = "CP") -> str:
    """A station id (or tag) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def memory_settings(**overrides: Any) -> Settings:
    """Settings for an in-process runtime: nothing listens, nothing reads the environment's
    URLs."""
    values: dict[str, Any] = {"namespace": "memory", "quorum_queues": False,
                              "files_port": 0, "instance": "test"}
    values.update(overrides)
    return load_settings(**values)


def memory_runtime(spec: ServiceSpec, **settings: Any) -> ServiceRuntime:
    """A service runtime over the in-memory bus and store (nothing started yet)."""
    config = memory_settings(**settings)
    bus = MemoryBus(Topology.from_settings(config), prefetch=config.prefetch)
    return ServiceRuntime(spec, config, bus=bus, store=memory_store(config.mongo_db))


def built(spec: ServiceSpec, **settings: Any) -> Service:
    """What a service consumes, built over the in-memory runtime."""
    return spec.build(memory_runtime(spec, **settings))
