"""One RabbitMQ user per component, allowed exactly what it does (docs/security.md).

The permissions come from :mod:`services.topology` (:class:`~services.topology.Grant`, one
per component, for a namespace); this module names the users and writes them out, in the
two forms RabbitMQ takes:

    python -m gridlink.broker_users rabbitmqctl [--namespace NS] [--vhost VHOST]
        # set_permissions / set_topic_permissions commands for users you created
    python -m gridlink.broker_users definitions [--namespace NS] [--vhost VHOST] < passwords.json
        # a definitions file (rabbitmqctl import_definitions, load_definitions): the vhost,
        # the users with salted SHA-256 password hashes, their permissions
    python -m gridlink.broker_users definitions --dev > deploy/rabbitmq/definitions.json
        # the development file of docker compose and the dev overlay (DEV_PASSWORDS)

``passwords.json`` maps user names to passwords; only their hashes are printed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.topology import ExchangeRole, Grant, Topology

DEFAULT_VHOST = "gridlink"
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


@dataclass(frozen=True)
class ServiceUse:
    """What a service does on the broker beyond what every service does: the exchanges its
    queues are bound to, and whether it answers a ``reply_to`` (through the default exchange)."""

    consumes: tuple[ExchangeRole, ...]
    answers_reply_to: bool


#: Checked against each service's router and routes (tests/gridlink/test_broker_users.py).
SERVICES: dict[str, ServiceUse] = {
    "authz": ServiceUse(consumes=("calls",), answers_reply_to=True),  # admission answers
    "transactions": ServiceUse(consumes=("calls",), answers_reply_to=False),
    "commands": ServiceUse(consumes=("calls", "commands_in", "events"),
                           answers_reply_to=True),  # command results to requesters
}
#: Component -> its user. ``cli``: ``gridlink command`` and other command requesters;
#: ``api``: the HTTP API (a command requester with reply queues of its own).
USERS = {component: f"gridlink-{component}"
         for component in ("gateway", *SERVICES, "cli", "api")}

#: Development only (docker compose, the dev overlay): in the repository in clear, like the
#: URLs that use them. Production passwords are never in the repository.
DEV_PASSWORDS = {user: f"dev-only-{component}" for component, user in USERS.items()}
DEV_ADMIN, DEV_ADMIN_PASSWORD = "gridlink-admin", "dev-only-admin"  # the management UI


def grants(topology: Topology) -> dict[str, Grant]:
    """Each user's permissions for one namespace."""
    by_component = {"gateway": topology.gateway_grant(), "cli": topology.requester_grant(),
                    "api": topology.requester_grant("api")}
    for service, use in SERVICES.items():
        by_component[service] = topology.service_grant(
            service, consumes=use.consumes, answers_reply_to=use.answers_reply_to)
    return {USERS[component]: by_component[component] for component in USERS}


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + SHA-256(salt + password)),
    with a 4-byte salt."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_matches(password: str, hashed: str) -> bool:
    raw = base64.b64decode(hashed)
    return password_hash(password, raw[:4]) == hashed


def definitions(topology: Topology, vhost: str, hashes: Mapping[str, str], *,
                administrators: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A RabbitMQ definitions document: the vhost, the users (``hashes``: user -> password
    hash) and their permissions; ``administrators`` (user -> hash) get every permission in the
    vhost and the management UI."""
    admins = dict(administrators or {})
    users = [{"name": name, "password_hash": hashes[name],
              "hashing_algorithm": HASHING_ALGORITHM, "tags": []} for name in grants(topology)]
    users += [{"name": name, "password_hash": hashed, "hashing_algorithm": HASHING_ALGORITHM,
               "tags": ["administrator"]} for name, hashed in admins.items()]
    permissions = [{"user": name, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
                   for name in admins]
    topic_permissions = []
    for name, grant in grants(topology).items():
        configure, write, read = grant.patterns()
        permissions.append({"user": name, "vhost": vhost, "configure": configure,
                            "write": write, "read": read})
        for exchange, (topic_write, topic_read) in grant.topic_patterns().items():
            topic_permissions.append({"user": name, "vhost": vhost, "exchange": exchange,
                                      "write": topic_write, "read": topic_read})
    return {"vhosts": [{"name": vhost}], "users": users, "permissions": permissions,
            "topic_permissions": topic_permissions}


def dev_definitions() -> dict[str, Any]:
    """deploy/rabbitmq/definitions.json. The salts are fixed, so the file is reproducible."""

    def fixed(user: str, password: str) -> str:
        return password_hash(password, hashlib.sha256(f"gridlink-dev:{user}".encode()).digest()[:4])

    return definitions(Topology("gridlink"), DEFAULT_VHOST,
                       {user: fixed(user, password) for user, password in DEV_PASSWORDS.items()},
                       administrators={DEV_ADMIN: fixed(DEV_ADMIN, DEV_ADMIN_PASSWORD)})


def rabbitmqctl_commands(topology: Topology, vhost: str) -> list[str]:
    """``rabbitmqctl`` commands giving each (existing) user its permissions."""
    lines = []
    for name, grant in grants(topology).items():
        lines.append(f"rabbitmqctl set_permissions -p {vhost} {name} "
                     + " ".join(f"'{pattern}'" for pattern in grant.patterns()))
        for exchange, patterns in grant.topic_patterns().items():
            lines.append(f"rabbitmqctl set_topic_permissions -p {vhost} {name} {exchange} "
                         + " ".join(f"'{pattern}'" for pattern in patterns))
    return lines


def main(argv: list[str] | None = None, *, stdin: Callable[[], str] = sys.stdin.read) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridlink.broker_users",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("form", choices=("rabbitmqctl", "definitions"))
    parser.add_argument("--namespace", default="gridlink", help="GRIDLINK_NAMESPACE")
    parser.add_argument("--vhost", default=DEFAULT_VHOST)
    parser.add_argument("--dev", action="store_true",
                        help="the development definitions (docker compose, dev overlay)")
    args = parser.parse_args(argv)
    topology = Topology(args.namespace)
    if args.form == "rabbitmqctl":
        print("\n".join(rabbitmqctl_commands(topology, args.vhost)))
        return 0
    if args.dev:
        document = dev_definitions()
    else:
        passwords = json.loads(stdin())
        missing = sorted(set(grants(topology)) - set(passwords))
        if missing:
            parser.error(f"no password for {', '.join(missing)} on standard input")
        document = definitions(topology, args.vhost,
                               {user: password_hash(passwords[user]) for user in grants(topology)})
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
