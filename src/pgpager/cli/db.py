"""``pgpager db``: schema migrations."""

from __future__ import annotations

import click

from pgpager.cli.common import Obj, confirm, json_option, yes_option


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def upgrade(obj: Obj, revision: str) -> None:
    """Migrate the schema up to REVISION."""
    from pgpager import migrations
    from pgpager.runtime import database

    with database(obj.settings(), migrate=False) as url:
        migrations.upgrade(url, revision)
        click.echo(f"at revision {migrations.current(url)}")


@db.command()
@click.argument("revision")
@yes_option
@click.pass_obj
def downgrade(obj: Obj, revision: str, yes: bool) -> None:
    """Migrate the schema down to REVISION ('base' removes everything pgpager created)."""
    from pgpager import migrations
    from pgpager.runtime import database

    confirm(f"downgrade the schema to {revision} (this can drop data)", yes)

    with database(obj.settings(), migrate=False) as url:
        migrations.downgrade(url, revision)
        click.echo(f"at revision {migrations.current(url)}")


@db.command()
@json_option
@click.pass_obj
def current(obj: Obj, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one this pgpager knows."""
    from pgpager import migrations, render
    from pgpager.runtime import database

    with database(obj.settings(), migrate=False) as url:
        revision, head = migrations.current(url), migrations.head()
    if as_json:
        render.print_json({"current": revision, "head": head, "up_to_date": revision == head})
    else:
        click.echo(f"current: {revision}  head: {head}")
