"""``forewarn keys …``: API keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.support import cli_session, cli_settings, command_group, echo_json, local_time

__all__ = ["keys_app"]

keys_app = command_group("API keys.")

_KEYS_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the keys (never their secrets) as JSON")]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,import,plan,approve,admin")],
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days")] = None,
) -> None:
    """Create an API key and print it once."""
    from service.store.base import utcnow
    from service.store.keys import create_key

    expires = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
    with cli_session(cli_settings()) as session:
        try:
            row, plaintext = create_key(session=session, name=name,
                                        scopes=[s.strip() for s in scopes.split(",") if s],
                                        expires_at=expires)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    typer.echo(plaintext)
    typer.echo(f"prefix {row.prefix}, scopes {','.join(row.scopes)}", err=True)


@keys_app.command("list")
def keys_list(as_json: _KEYS_JSON = False) -> None:
    """List keys (never their secrets)."""
    from service.store.keys import list_keys

    settings = cli_settings()
    with cli_session(settings) as session:
        rows: list[dict[str, Any]] = [{"prefix": k.prefix, "name": k.name, "scopes": k.scopes,
                 "created_at": k.created_at, "expires_at": k.expires_at,
                 "revoked_at": k.revoked_at, "last_used_at": k.last_used_at}
                for k in list_keys(session=session)]
    if as_json:
        echo_json(rows)
        return
    from service.store.base import as_utc, utcnow

    tz = settings.timezone
    typer.echo(f"times in {tz}")
    for r in rows:
        expired = r["expires_at"] is not None and as_utc(r["expires_at"]) <= utcnow()
        state = "revoked" if r["revoked_at"] else "expired" if expired else "active"
        typer.echo(f"{r['prefix']}  {state:<8} {','.join(r['scopes']):<24} "
                   f"created {local_time(r['created_at'], tz)}  "
                   f"expires {local_time(r['expires_at'], tz)}  "
                   f"last used {local_time(r['last_used_at'], tz)}  {r['name']}")


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with PREFIX."""
    from service.store.keys import revoke_key

    with cli_session(cli_settings()) as session:
        row = revoke_key(session=session, prefix=prefix)
    if row is None:
        typer.echo(f"no key with prefix {prefix}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {prefix}")


@keys_app.command("bootstrap")
def keys_bootstrap(
    key_file: Annotated[Path, typer.Option(help="Where the local admin key is kept")] = Path(
        "var/admin-key.txt"),
) -> None:
    """Create a local admin key on first start (stored in KEY_FILE, mode 0600) and print it."""
    from service.store.keys import create_key, list_keys

    with cli_session(cli_settings()) as session:
        if key_file.exists() and list_keys(session=session):
            typer.echo(f"local admin key: {key_file.read_text().strip()}  (from {key_file})")
            return
        _, plaintext = create_key(session=session, name="local-admin", scopes=["admin"])
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(plaintext + "\n")
    key_file.chmod(0o600)
    typer.echo(f"local admin key: {plaintext}  (saved to {key_file})")
