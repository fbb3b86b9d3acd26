"""Resolving the database for a process: an external URL, or the embedded server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pgpager import migrations
from pgpager.database import check_server
from pgpager.embedded import EmbeddedPostgres
from pgpager.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def database(settings: Settings, *, exclusive: bool = False, migrate: bool = True) -> Iterator[str]:
    """Yield a ready database URL: checked for pgvector and, if ``migrate``, at the head revision.

    Without ``settings.database_url`` the embedded server is started (or joined, if another
    process runs it) and stopped again on exit when this process was its last user.
    """
    embedded: EmbeddedPostgres | None = None
    if settings.database_url:
        url = settings.database_url
    else:
        embedded = EmbeddedPostgres(settings.data_dir, exclusive=exclusive)
        url = embedded.start()
    try:
        check_server(url)
        if migrate:
            migrations.upgrade(url)
        yield url
    finally:
        if embedded is not None:
            embedded.stop()
