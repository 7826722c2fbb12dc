"""Keys of the HTTP API::

    gridlink api-keys add NAME --scope read|commands|admin [--scope ...]
    gridlink api-keys list [--json]
    gridlink api-keys revoke KEY_ID

``add`` prints the key once (it is stored only as a hash: keep it now); ``list`` shows key
ids, names, scopes and whether revoked, never a key.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gridlink.cli.output import print_rows, with_db
from services.errors import ConfigurationError, GridLinkError
from services.settings import Settings

SCOPES = ("read", "commands", "admin")  # api.keys.SCOPES (checked by its tests)


def add_parsers(sub: Any, parser_class: type) -> None:
    keys = sub.add_parser("api-keys", help="keys of the HTTP API")
    ks = keys.add_subparsers(dest="action", required=True, parser_class=parser_class)
    add = ks.add_parser("add", help="create a key (printed once)")
    add.add_argument("name", help="who or what uses it (shown in list and the audit trail)")
    add.add_argument("--scope", action="append", choices=SCOPES, required=True,
                     help="read, commands (and read) or admin (everything); repeatable")
    add.add_argument("--json", action="store_true")
    listing = ks.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    revoke = ks.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(dispatch=dispatch)


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    from api import keys

    if args.action == "add":
        if not args.name.strip() or len(args.name) > 200:
            raise ConfigurationError("NAME: 1 to 200 characters")
        key_id, key = await with_db(settings, lambda db: keys.create_key(
            db, args.name, args.scope))
        if args.json:
            print(json.dumps({"keyId": key_id, "key": key}))
        else:
            print(f"key {key_id} ({', '.join(keys.check_scopes(args.scope))}):\n{key}\n"
                  "Shown only now: GridLink keeps only its hash.")
        return 0
    if args.action == "list":
        rows = await with_db(settings, keys.list_keys)
        print_rows([{"keyId": row["_id"], "name": row.get("name"),
                     "scopes": ",".join(row.get("scopes", [])),
                     "created": _time(row.get("created_at")),
                     "revoked": _time(row.get("revoked_at"))} for row in rows], args.json)
        return 0
    if not await with_db(settings, lambda db: keys.revoke(db, args.key_id)):
        raise GridLinkError(f"no API key {args.key_id!r}")
    print(f"key {args.key_id} revoked")
    return 0


def _time(value: Any) -> str | None:
    from services.clock import iso

    return iso(value) if value is not None else None
