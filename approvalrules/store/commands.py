"""Plain functions behind ``approvalrules migrate|load|export|export-directory``, each taking
an .ini path.

``migrate(ini)`` creates or upgrades the schema (``sqlalchemy.url`` of the
``[app:main]`` section); ``load(ini, folder)`` migrates too, then loads the
folder in one transaction: all of it or nothing.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import plaster
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ApprovalRulesError
from . import migrate as _migrate
from .db import get_engine, settings_from_ini
from .directory_export import export_directory_yaml
from .importer import LoadReport, export_ruleset, load_folder
from .models import AdminUser
from .services import (
    create_admin_user,
    create_tenant,
    ensure_api_key,
    resolve_tenant,
)
from .versions import VersionLookup

__all__ = [
    "dev_credentials",
    "new_tenant",
    "export",
    "export_directory",
    "load",
    "migrate",
    "open_version_lookup",
    "settings_from_ini",  # re-exported: the workflow's commands read .ini files the same way
]


def migrate(ini_path: str | Path) -> None:
    """Create or upgrade the database named by the .ini file to the latest schema."""
    _migrate.upgrade(settings_from_ini(ini_path))


def load(ini_path: str | Path, folder: str | Path, author: str = "importer") -> LoadReport:
    """Migrate, then load ``folder`` (see ``approvalrules.store.importer``); idempotent."""
    settings = settings_from_ini(ini_path)
    engine = get_engine(settings)
    try:
        _migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            return load_folder(session, folder, author=author)
    finally:
        engine.dispose()


def export(ini_path: str | Path, tenant: str, name: str, version: int | None = None) -> str:
    """The verbatim text of a rule set version (default: active)."""
    engine = get_engine(settings_from_ini(ini_path))
    try:
        with Session(engine) as session:
            return export_ruleset(session, tenant, name, version)
    finally:
        engine.dispose()


def export_directory(ini_path: str | Path, tenant: str) -> str:
    """A tenant's stored directory as YAML that ``load`` accepts (see ``directory_export``)."""
    engine = get_engine(settings_from_ini(ini_path))
    try:
        with Session(engine) as session:
            return export_directory_yaml(session, tenant)
    finally:
        engine.dispose()


def new_tenant(
    ini_path: str | Path, slug: str, name: str, owner: str, password: str
) -> tuple[str, str]:
    """Migrate, then create tenant ``slug`` with its first admin user, an owner, in one
    transaction (nothing is created when anything is refused).  Returns (slug, owner login)."""
    settings = settings_from_ini(ini_path)
    engine = get_engine(settings)
    try:
        _migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            tenant, user = create_tenant(session, slug, name, owner, password, actor="cli")
            return tenant.slug, user.login
    finally:
        engine.dispose()


def _read_password(from_stdin: bool) -> str:
    """The new owner's password: the first line of standard input, or typed twice at a prompt
    (never an argument: arguments show in the process list and the shell's history)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password of the first owner: ")
    if getpass.getpass("Again: ") != first:
        raise ApprovalRulesError(
            "passwords_differ", "the two passwords differ; nothing was created"
        )
    return first


def _cmd_create_tenant(args) -> int:
    password = _read_password(args.password_stdin)
    slug, login = new_tenant(args.ini, args.slug, args.name or args.slug, args.owner, password)
    print(f"tenant {slug}: created with owner {login}")
    print(
        f"log in at /admin/login (tenant {slug}, login {login}); "
        "add users and API keys there, or: approvalrules api-key INI TENANT --scope ..."
    )
    return 0


def open_version_lookup(ini_path: str | Path) -> VersionLookup:
    """Stored versions of the database named by the .ini file, for tools; ``close()`` it after."""
    engine = get_engine(settings_from_ini(ini_path))
    return VersionLookup(Session(engine), engine)


# -- command line (``approvalrules.cli`` calls ``add_parsers`` when the store is installed) ----


def _cmd_migrate(args) -> int:
    migrate(args.ini)
    print(f"database of {args.ini} is at the latest schema")
    return 0


def _cmd_load(args) -> int:
    report = load(args.ini, args.folder)
    for tenant, name, number in report.published:
        print(f"{tenant}: published {name} version {number}")
    for warning in report.warnings:
        print(warning.format(), file=sys.stderr)
    print(report.summary())
    return 0


def _cmd_export(args) -> int:
    return _write(export(args.ini, args.tenant, args.name, args.version), args.output)


def _cmd_export_directory(args) -> int:
    return _write(export_directory(args.ini, args.tenant), args.output)


def _write(text: str, output: str | None) -> int:
    """``text`` to the file ``output``, or byte for byte to standard output."""
    data = text.encode("utf-8")
    if output:
        Path(output).write_bytes(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def dev_credentials(ini_path: str | Path) -> tuple[str, str, str]:
    """Ensure the development API key and admin login named in the .ini exist.

    Returns (tenant, key, login).
    """
    settings = settings_from_ini(ini_path)
    tenant_slug = settings.get("approvalrules.dev_tenant", "demo")
    key = settings.get("approvalrules.dev_api_key")
    login, _, password = settings.get("approvalrules.dev_admin", "admin:admin").partition(":")
    if not key:
        raise ApprovalRulesError(
            "no_dev_credentials",
            f"{ini_path} sets no approvalrules.dev_api_key: "
            "development credentials are for development.ini only",
        )
    engine = get_engine(settings)
    try:
        with Session(engine) as session, session.begin():
            tenant = resolve_tenant(session, tenant_slug)
            ensure_api_key(session, tenant, key)
            if (
                session.scalar(
                    select(AdminUser).where(
                        AdminUser.tenant_id == tenant.id, AdminUser.login == login
                    )
                )
                is None
            ):
                create_admin_user(session, tenant, login, password, role="owner")
    finally:
        engine.dispose()
    return tenant_slug, key, login


def served_url(
    ini_path: str, variables: dict[str, str] | None = None, server_name: str = "main"
) -> str:
    """The address ``pserve INI --server-name NAME [name=value ...]`` serves on: the server
    section's ``listen`` (or ``host``/``port``) read with the same variables."""
    loader = plaster.get_loader(str(ini_path), protocols=["wsgi"])
    # {} when the section is absent
    server = loader.get_settings(f"server:{server_name}", defaults=variables or None)
    listen = (server.get("listen") or "").split()
    if listen:
        host, _, port = listen[0].rpartition(":")
    else:
        host, port = server.get("host", "127.0.0.1"), server.get("port", "6543")
    host = "127.0.0.1" if host in ("", "*", "0.0.0.0") else host
    return f"http://{host}:{port}"


def _cmd_dev_credentials(args) -> int:
    variables = dict(v.split("=", 1) for v in args.variables)
    tenant, key, login = dev_credentials(args.ini)
    url = served_url(args.ini, variables, args.server_name)
    print(f"tenant {tenant}: API key {key}  (Authorization: Bearer {key})")
    print(f"admin: {url}/admin/login?tenant={tenant} as {login} (password in {args.ini})")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "dev-credentials", help="create the development API key and admin login named in the .ini"
    )
    p.add_argument("ini")
    p.add_argument(
        "--server-name",
        default="main",
        help="the .ini's server section, as pserve takes it (development.ini: port)",
    )
    p.add_argument(
        "variables",
        nargs="*",
        metavar="name=value",
        help="the .ini's variables as pserve takes them, e.g. http_port=8080 (for the printed URL)",
    )
    p.set_defaults(func=_cmd_dev_credentials)

    p = sub.add_parser(
        "create-tenant",
        help="create a tenant (a merchant) and its first admin user, an owner; the password is "
        "read from a prompt or, with --password-stdin, from standard input",
    )
    p.add_argument("ini")
    p.add_argument("slug", help="the tenant's short name: lower-case letters, digits and '-'")
    p.add_argument("--name", help="the merchant's display name (default: the slug)")
    p.add_argument("--owner", required=True, help="login of the first owner")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the owner's password from the first line of standard input",
    )
    p.set_defaults(func=_cmd_create_tenant)

    p = sub.add_parser("migrate", help="create or upgrade the database schema (Alembic)")
    p.add_argument("ini", help="the .ini file naming the database (sqlalchemy.url)")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser(
        "load", help="load rules/*.yaml and rules/directories/*.yaml into the store (idempotent)"
    )
    p.add_argument("ini")
    p.add_argument("folder", help="the rules folder")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("export", help="print a rule-set version's text, byte for byte as published")
    p.add_argument("ini")
    p.add_argument("name", help="rule set name")
    p.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
    p.add_argument("--version", type=int, help="version number (default: the active one)")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "export-directory",
        help="print a tenant's directory as YAML that `load` accepts (rules/directories/*.yaml)",
    )
    p.add_argument("ini")
    p.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=_cmd_export_directory)
