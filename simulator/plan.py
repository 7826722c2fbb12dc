"""What a fleet run does: the :class:`FleetPlan`, and :func:`split_plan` over processes.

A plan is plain data: the target URL, the fleet (size, connectors, identities and id tags),
the profile with its knobs (duration, rate, ramp, timeouts, validation, script) and how the
chargers prove who they are (security profiles 1-3: passwords, TLS trust, client
certificates; file names and templates only, read where the chargers run).  One plan runs in
one process (:class:`simulator.fleet.Fleet`); :func:`split_plan` divides it between worker
processes so that identities stay unique and the rate adds up (every other field, the
security ones included, is carried as it is).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

from simulator.charger_config import ChargerConfig


@dataclass(frozen=True)
class FleetPlan:
    """What to run: the target, the fleet, the profile and its knobs."""

    url: str
    chargers: int
    connectors: int = 1
    profile: str = "realistic"
    duration_s: float = 60.0
    rate: float = 100.0
    id_prefix: str = "SIM"
    id_tag: str = "SIMTAG0001"
    first_index: int = 1
    id_width: int = 0  # digits in charger ids; 0: enough for first_index + chargers
    ramp_s: float = 10.0
    call_timeout_s: float = 30.0
    connect_timeout_s: float = 30.0
    close_grace_s: float = 5.0
    validate: str = "first"
    script: str = "session"
    meter_values_per_session: int = 8
    heartbeat_interval_s: float | None = None
    source_addresses: tuple[str, ...] = ()
    ping_interval_s: float | None = None
    reconnect: bool = True
    fail_fast: bool = True  # give up if nothing connects: refused/4xx, or all failed twice
    jitter: bool = True  # desynchronise sessions (random first delay and session lengths)
    start_at: float | None = None  # time.monotonic() to start at (aligns worker processes)
    transaction_message_attempts: int = 3  # TransactionMessageAttempts of every charger
    transaction_message_retry_s: int = 60  # TransactionMessageRetryInterval
    settle_s: float = 0.0  # after duration_s: time to deliver the transaction messages left
    # --- security profiles (OCPP 1.6 Security Whitepaper ed. 2, section 2) ---
    password: str | None = None  # HTTP Basic password template ({n}, {id}): profiles 1, 2
    password_file: str | None = None  # lines "ID PASSWORD" (override ``password``)
    ca_file: str | None = None  # PEM CAs the server certificate must chain to (None: system)
    insecure: bool = False  # TEST ONLY: do not verify the server certificate at all
    cert_file: str | None = None  # client certificate template ({n}, {id}): profile 3
    key_file: str | None = None  # its private key template
    cert_dir: str | None = None  # or a directory of <id>.pem / <id>.key
    organization: str | None = None  # CpoName: the O of the CSRs the chargers send
    certificate_cn: str | None = None  # CN template of the CSRs (None: the charger id)

    def _number(self, index: int) -> str:
        width = self.id_width or len(str(self.first_index + self.chargers - 1))
        return f"{self.first_index + index:0{width}d}"

    def charger_id(self, index: int) -> str:
        """The identity of the ``index``-th charger (0-based within this plan)."""
        return f"{self.id_prefix}{self._number(index)}"

    def expand(self, template: str, index: int) -> str:
        """``template`` with ``{n}`` (the charger's number) and ``{id}`` (its identity) filled."""
        return template.replace("{n}", self._number(index)).replace("{id}", self.charger_id(index))

    def id_tag_for(self, index: int) -> str:
        """The idTag of the ``index``-th charger: ``id_tag`` with ``{n}`` replaced by its number."""
        return self.id_tag.replace("{n}", self._number(index))

    def charger_url(self, charger_id: str) -> str:
        """``{url}/{id}`` with the id percent-encoded."""
        return f"{self.url.rstrip('/')}/{quote(charger_id, safe='')}"

    @property
    def tls(self) -> bool:
        """Whether the chargers connect over TLS (a ``wss://`` URL)."""
        return urlsplit(self.url).scheme == "wss"

    @property
    def security_profile(self) -> int:
        """The security profile the chargers use: 3 with client certificates over TLS, 2 with
        a password over TLS, 1 with a password over plain TCP, else 0 (none)."""
        has_password = self.password is not None or self.password_file is not None
        if self.tls and (self.cert_file is not None or self.cert_dir is not None):
            return 3
        if has_password:
            return 2 if self.tls else 1
        return 0

    def client_files(self, index: int) -> tuple[str, str] | None:
        """The ``index``-th charger's client certificate and key files (None: it has none)."""
        if self.cert_dir is not None:
            charger_id = self.charger_id(index)
            return (
                os.path.join(self.cert_dir, f"{charger_id}.pem"),
                os.path.join(self.cert_dir, f"{charger_id}.key"),
            )
        if self.cert_file is None or self.key_file is None:
            return None
        return self.expand(self.cert_file, index), self.expand(self.key_file, index)

    def charger_config(
        self,
        index: int,
        *,
        passwords: Mapping[str, str] | None = None,
        central_system_roots: str = "",
    ) -> ChargerConfig:
        """How the ``index``-th charger behaves (profiles other than realistic run sessions).

        What the plan names by file comes read: ``passwords`` from ``password_file`` (a charger
        listed there uses that password, the others ``password``), ``central_system_roots``
        the PEM text of ``ca_file``.
        """
        charger_id = self.charger_id(index)
        password = (passwords or {}).get(charger_id)
        if password is None and self.password is not None:
            password = self.expand(self.password, index)
        return ChargerConfig(
            charger_id=charger_id,
            connectors=self.connectors,
            id_tag=self.id_tag_for(index),
            call_timeout_s=self.call_timeout_s,
            transaction_message_attempts=self.transaction_message_attempts,
            transaction_message_retry_s=self.transaction_message_retry_s,
            meter_values_per_session=self.meter_values_per_session,
            heartbeat_interval_s=self.heartbeat_interval_s,
            script=self.script if self.profile == "realistic" else "session",
            jitter=self.jitter,
            authorization_key=password,
            security_profile=self.security_profile,
            cpo_name=self.organization,
            certificate_cn=(
                self.expand(self.certificate_cn, index) if self.certificate_cn else charger_id
            ),
            central_system_roots=central_system_roots,
        )

    def source_address(self, index: int) -> str | None:
        """The local address the ``index``-th charger connects from (None: the default)."""
        if not self.source_addresses:
            return None
        return self.source_addresses[index % len(self.source_addresses)]


def split_plan(plan: FleetPlan, workers: int) -> list[FleetPlan]:
    """Divide a plan's chargers (and rate) between ``workers`` processes."""
    workers = max(1, min(workers, plan.chargers))
    base, extra = divmod(plan.chargers, workers)
    plans: list[FleetPlan] = []
    first = plan.first_index
    width = plan.id_width or len(str(plan.first_index + plan.chargers - 1))
    for n in range(workers):
        count = base + (1 if n < extra else 0)
        addresses = plan.source_addresses[n::workers] or plan.source_addresses
        plans.append(
            replace(
                plan,
                chargers=count,
                first_index=first,
                id_width=width,
                rate=plan.rate * count / plan.chargers,
                source_addresses=addresses,
            )
        )
        first += count
    return plans


__all__ = ["FleetPlan", "split_plan"]
