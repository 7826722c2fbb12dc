"""The station registry and the id-tag store::

    gridlink stations add ID... [--security-profile 0|1|2|3] [--password P | --password-file F]
                                [--certificate-cn CN] [--registration Accepted|Pending|Rejected]
    gridlink stations import FILE [--dry-run]
    gridlink stations list [--json]

A station's security profile says how it must authenticate (OCPP 1.6 Security Whitepaper):
0 not at all (only where GRIDLINK_ALLOW_SECURITY_PROFILE_0 is on), 1 HTTP Basic, 2 HTTP
Basic over TLS, 3 a TLS client certificate whose CN is ``--certificate-cn`` (default: the
id). Without ``--security-profile`` it is 1 with a password and 0 without. For profile 1 or
2 without a password, each new station gets a random 40-hex-digit key, printed once (it is
stored only as a hash); a station that has a password keeps it. An id must be one the
gateway takes (services/station_ids.py: letters, digits, single inner spaces and
``*-_=:+|@.~!$&'(),;``, at most GRIDLINK_MAX_STATION_ID_LENGTH characters); it is stored
in Unicode NFC.
    gridlink tags import FILE [--dry-run]
    gridlink tags add TAG... [--status S] [--expiry ISO8601] [--parent TAG] [--max-concurrent N]
    gridlink tags list [--json]

``import`` reads CSV with a header line or JSON lines (:mod:`gridlink.registry_import`):
each line does what ``add`` does with the same options, every line is checked before
anything is written, and the report names each rejected line (exit 1 if there is one).

``--max-concurrent N`` lets a tag (a fleet card) be Accepted in N transactions at once on
different connectors (default 1; a later ``tags add`` without it keeps the stored limit).
A new start on the connector of the tag's unfinished transaction is never refused: it
supersedes that one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gridlink import queries
from gridlink.cli.output import parse_time_option, print_rows, with_db
from services import id_tags, station_ids, stations
from services.errors import ConfigurationError
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    registry = sub.add_parser("stations", help="the station registry")
    st = registry.add_subparsers(dest="action", required=True, parser_class=parser_class)
    st_add = st.add_parser("add", help="register charge points")
    st_add.add_argument("ids", nargs="+", metavar="ID")
    st_add.add_argument("--security-profile", type=int, choices=stations.PROFILES,
                        default=None, help="how the station authenticates (default: 1 with "
                        "a password, else 0)")
    secret = st_add.add_mutually_exclusive_group()
    secret.add_argument("--password", help="its AuthorizationKey for HTTP Basic (profiles 1 "
                        "and 2; 16-40 characters; generated when not given)")
    secret.add_argument("--password-file", help="read the AuthorizationKey from this file "
                        "(its first line)")
    st_add.add_argument("--certificate-cn", help="the CN its client certificate carries "
                        "(profile 3; default: the id)")
    st_add.add_argument("--registration", choices=["Accepted", "Pending", "Rejected"],
                        default=None, help="BootNotification answer (default: Accepted)")
    st_add.set_defaults(dispatch=add_stations)
    _add_import(st, "stations add", "id, security_profile, password, certificate_cn, "
                "registration", import_stations)
    st_list = st.add_parser("list", help="list charge points")
    st_list.add_argument("--json", action="store_true")
    st_list.set_defaults(dispatch=list_stations)

    tags = sub.add_parser("tags", help="the id-tag store")
    tg = tags.add_subparsers(dest="action", required=True, parser_class=parser_class)
    tg_add = tg.add_parser("add", help="add or update id tags (the same options for each)")
    tg_add.add_argument("tags", nargs="+", metavar="TAG")
    tg_add.add_argument("--status", choices=id_tags.STATUSES, default="Accepted")
    tg_add.add_argument("--expiry", help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")
    tg_add.add_argument("--parent", help="parent id tag (group)")
    tg_add.add_argument("--max-concurrent", type=int, metavar="N",
                        help="transactions it may have Accepted at once on different "
                        f"connectors, 1-{id_tags.MAX_CONCURRENT_LIMIT} (default 1; when not "
                        "given, a stored limit is kept)")
    tg_add.set_defaults(dispatch=add_tag)
    _add_import(tg, "tags add", "id_tag, status, expiry, parent, max_concurrent", import_tags)
    tg_list = tg.add_parser("list", help="list id tags")
    tg_list.add_argument("--json", action="store_true")
    tg_list.set_defaults(dispatch=list_tags)


def _add_import(actions: Any, add: str, fields: str, dispatch: Any) -> None:
    """The ``import FILE [--dry-run]`` action next to ``add`` (stations and tags alike)."""
    what = "charge points" if add.startswith("stations") else "id tags"
    parser = actions.add_parser(
        "import", help=f"add or update many {what} from a CSV or JSON-lines file",
        description=f"Each line does what `{add}` does with the same options. Fields "
        f"(snake_case or the camelCase of `list --json`): {fields}. Every line is checked "
        "first; the good ones are then upserted in bulk and each rejected one is reported "
        "with its line number. Exit 1 if any line was rejected.")
    parser.add_argument("file", metavar="FILE", help="CSV with a header line, or JSON lines")
    parser.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    parser.set_defaults(dispatch=dispatch)


async def add_stations(settings: Settings, args: argparse.Namespace) -> int:
    try:  # the gateway's own check (services/station_ids.py): refused ids never connect
        args.ids = [station_ids.check(station, settings.max_station_id_length)
                    for station in args.ids]
    except station_ids.InvalidStationId as exc:
        raise ConfigurationError(str(exc)) from None
    registration = args.registration or settings.default_registration
    password = _password(args)
    if password is not None and len(args.ids) > 1:
        raise ConfigurationError("one password for several stations: each should have its "
                                 "own (A01.FR.06); add them one by one, or let GridLink "
                                 "generate them")
    profile = args.security_profile
    if profile is None:
        profile = 1 if password is not None else 0
    if password is not None and profile in (0, 3):
        raise ConfigurationError(f"--password: a security profile {profile} station does not "
                                 "use one (profiles 1 and 2 do)")
    if args.certificate_cn is not None and len(args.ids) > 1:
        raise ConfigurationError("--certificate-cn names one station's certificate "
                                 "(A00.FR.427): add them one by one")
    try:
        generated = await with_db(settings, lambda db: queries.add_stations(
            db, args.ids, registration=registration, password=password,
            security_profile=profile, certificate_cn=args.certificate_cn))
    except stations.IdentityTaken as exc:
        raise ConfigurationError(f"--certificate-cn: {exc}") from None
    print(f"added {len(args.ids)} station(s), security profile {profile}")
    for station, key in generated.items():
        print(f"{station}  AuthorizationKey {key}  (shown once; stored only as a hash)")
    if profile == 0 and not settings.allow_security_profile_0:
        print("note: security profile 0 means no authentication: such stations connect only "
              "where GRIDLINK_ALLOW_SECURITY_PROFILE_0 is true (`make run` does, production "
              "never); --security-profile 1 gives a password", file=sys.stderr)
    return 0


def _password(args: argparse.Namespace) -> str | None:
    """The password given (or read from its file), checked against A00.FR.205."""
    password = args.password
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                password = handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"--password-file: cannot read it: {exc}") from None
    if password is not None and (problem := stations.key_problem(password)) is not None:
        raise ConfigurationError(f"--password: {problem}")
    return password


async def list_stations(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, queries.list_stations), args.json)
    return 0


async def add_tag(settings: Settings, args: argparse.Namespace) -> int:
    from gridlink import registry_import as bulk

    expiry = parse_time_option("--expiry", args.expiry)
    limit = args.max_concurrent
    if limit is not None and not 1 <= limit <= id_tags.MAX_CONCURRENT_LIMIT:
        raise ConfigurationError(f"--max-concurrent must be 1..{id_tags.MAX_CONCURRENT_LIMIT}")
    for tag in [*args.tags, *([args.parent] if args.parent else [])]:
        if problem := bulk.id_tag_problem(tag):
            raise ConfigurationError(f"{tag!r}: {problem}")
    lines = [bulk.TagLine(number, tag, args.status, expiry, args.parent, limit)
             for number, tag in enumerate(dict.fromkeys(args.tags), start=1)]
    report = bulk.Report()
    await with_db(settings, lambda db: bulk.upsert_tags(db, lines, report))
    names = [tag for _, tag in report.created + report.updated]
    print(f"tag {names[0]} saved" if len(names) == 1 else
          f"{len(names)} tags saved ({len(report.created)} new, {len(report.updated)} updated)")
    return 0


async def import_stations(settings: Settings, args: argparse.Namespace) -> int:
    from gridlink import registry_import as bulk

    try:
        report = await with_db(settings, lambda db: bulk.import_stations(
            db, args.file, default_registration=settings.default_registration,
            max_id_length=settings.max_station_id_length, dry_run=args.dry_run))
    except bulk.LineError as exc:
        raise ConfigurationError(str(exc)) from None
    return _print_report(report)


async def import_tags(settings: Settings, args: argparse.Namespace) -> int:
    from gridlink import registry_import as bulk

    try:
        report = await with_db(settings, lambda db: bulk.import_tags(
            db, args.file, dry_run=args.dry_run))
    except bulk.LineError as exc:
        raise ConfigurationError(str(exc)) from None
    return _print_report(report)


def _print_report(report: Any) -> int:
    for line in report.lines():
        print(line)
    return 1 if report.rejected else 0


async def list_tags(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, queries.list_tags), args.json)
    return 0
