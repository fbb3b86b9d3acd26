"""The one settings object, read from ``PGPAGER_*`` environment variables and passed down
explicitly."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

ENV_PREFIX = "PGPAGER_"

SCOPES = ("read", "write", "sql", "admin")

LOG_FORMATS = ("text", "json")

BOOLEANS = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}


def _doc(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field whose documentation travels with it (README table, ``--help``)."""
    return field(default=default, metadata={"doc": text}, **kw)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("pgpager")) / "postgres"


def default_model_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("pgpager")) / "models"


@dataclass(frozen=True)
class ApiKey:
    """A bearer token and the scopes it grants. ``id`` is a digest, safe to store and log."""

    id: str
    token: str
    scopes: frozenset[str]


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Parse ``token:scope+scope,token2:scope`` (scopes: read, write, sql, admin).

    A token without scopes gets read+write. ``admin`` implies every scope.
    """
    keys: list[ApiKey] = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        token, _, scope_text = raw.partition(":")
        token = token.strip()
        if len(token) < 8:
            raise ValueError("PGPAGER_API_KEYS: each token must be at least 8 characters long")
        scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip()) or frozenset(
            {"read", "write"}
        )
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(
                f"PGPAGER_API_KEYS: unknown scope(s) {sorted(unknown)}; use {'/'.join(SCOPES)}"
            )
        key_id = hashlib.sha256(token.encode()).hexdigest()[:16]
        keys.append(ApiKey(id=key_id, token=token, scopes=scopes))
    return tuple(keys)


@dataclass(frozen=True)
class Settings:
    """Every knob of pgpager. Environment variable = ``PGPAGER_`` + the field name in upper case."""

    # --- database -------------------------------------------------------------------------
    database_url: str | None = _doc(
        "PostgreSQL URL (postgresql://...). Empty: start the embedded PostgreSQL 18 + pgvector.",
        None,
    )
    data_dir: Path = _doc(  # noqa: RUF009 - _doc returns a dataclasses.field
        "Data directory of the embedded PostgreSQL (used only without a database URL).",
        default_factory=default_data_dir,
    )
    pool_min_size: int = _doc("Connections the pool keeps open.", 2)
    pool_max_size: int = _doc("Most connections the pool opens.", 10)
    pool_timeout_s: float = _doc(
        "Seconds a request waits for a free database connection before it gets a 503.", 15.0
    )
    db_unavailable_wait_s: float = _doc(
        "While PostgreSQL is unreachable, seconds a request waits for it before a quick 503 "
        "(with Retry-After); the pool keeps reconnecting in the background.",
        0.5,
    )

    # --- read replicas (DESIGN 10) ------------------------------------------------------------
    read_database_urls: str = _doc(
        "Comma-separated URLs of PostgreSQL hot standbys of the primary (streaming replication, "
        "hot_standby_feedback = on): resumable-query cursors, offset search and listing, and "
        "the pages of completed stored queries are read there; every write goes to the "
        "primary. Empty: none.",
        "",
    )
    replica_max_lag_s: float = _doc(
        "Seconds a replica may lag behind the primary before it leaves the rotation; also the "
        "longest a read waits for a replica to replay the primary's latest writes.",
        2.0,
    )
    replica_check_s: float = _doc(
        "Seconds between checks of each replica (reachable, still a standby, its lag).", 1.0
    )
    handles_on_primary: bool = _doc(
        "Declare resumable-query cursors on the primary even when replicas are configured.",
        False,
    )

    # --- HTTP -----------------------------------------------------------------------------
    host: str = _doc("Address to bind. A non-loopback address requires API keys.", "127.0.0.1")
    port: int = _doc("Port to bind.", 8000)
    api_keys: str = _doc(
        "Bearer tokens: 'token:scope+scope,token2:scope'. Scopes: read, write, sql, admin. "
        "Empty: no auth (allowed on loopback only).",
        "",
    )
    public_docs: bool = _doc(
        "With API keys configured, serve /docs (the OpenAPI document and its pages) without a "
        "key. false: they need a key with the read scope.",
        True,
    )
    public_metrics: bool = _doc(
        "With API keys configured, serve /metrics without a key (for Prometheus scrapers). "
        "false: it needs a key with the read scope.",
        True,
    )
    log_level: str = _doc("Log level: debug, info, warning, error.", "info")
    log_format: str = _doc(
        "Log format on stderr: text (one line per record) or json (one object per line: ts, "
        "level, logger, message, exc).",
        "text",
    )
    access_log: bool = _doc(
        "Log every HTTP request (uvicorn's access log): 1/true/yes/on or 0/false/no/off.", False
    )

    # --- vectors --------------------------------------------------------------------------
    max_request_bytes: int = _doc(
        "Largest HTTP request body, in bytes; a larger one is refused with a 413 naming this "
        "setting (a batch of big vectors: send fewer per request).",
        10_000_000,
    )
    max_batch_size: int = _doc("Most vectors in one upsert/fetch/delete request.", 1000)
    max_id_length: int = _doc("Longest vector id, in characters.", 512)
    max_metadata_bytes: int = _doc(
        "Largest metadata of one vector, in bytes of its JSON encoding (Upstash Vector's limit, "
        "48 KB); a write of more is refused with a 422 naming the vector.",
        49_152,
    )
    max_data_bytes: int = _doc(
        "Largest data (text) stored with one vector, in bytes of UTF-8 (Upstash Vector's limit, "
        "1 MB); a write of more is refused with a 422 naming the vector.",
        1_048_576,
    )
    max_queries_per_request: int = _doc(
        "Most queries in one request (the Upstash query_many form).", 1000
    )

    # --- embedding models -----------------------------------------------------------------
    model_cache_dir: Path = _doc(  # noqa: RUF009 - _doc returns a dataclasses.field
        "Where embedding models fetched from the model hub are kept (fastembed's cache_dir); "
        "'pgpager models fetch NAME' fills it ahead of time.",
        default_factory=default_model_cache_dir,
    )
    embedding_model_dir: Path | None = _doc(  # noqa: RUF009 - _doc returns a dataclasses.field
        "For hosts without the model hub: a directory with one subdirectory per model, named "
        "like the model (DIR/sentence-transformers/all-MiniLM-L6-v2/ holding model.onnx, "
        "tokenizer.json, tokenizer_config.json, ...). Set, models load from there or from the "
        "cache, and only 'pgpager models fetch' asks the model hub.",
        None,
    )
    embedding_threads: int = _doc(
        "Threads ONNX Runtime uses for one embedding call. 1 is fastest for single queries on "
        "small machines; more can help big batches on many cores.",
        1,
    )
    embedding_concurrency: int = _doc(
        "Embedding calls that run at once, each on its own worker thread (off the event loop); "
        "more wait their turn. Large batches are embedded a chunk at a time, so a text query "
        "waits for at most one chunk.",
        2,
    )

    # --- offset pagination ----------------------------------------------------------------
    query_maximum_results: int = _doc(
        "offset + limit may not exceed this (offset pagination). "
        "Deeper: resumable or stored queries.",
        10_000,
    )
    flat_search_cutoff: int = _doc(
        "A filtered search whose filter matches at most this many rows uses an exact scan.",
        10_000,
    )
    hnsw_ef_search: int = _doc("hnsw.ef_search for searches (pgvector default 40).", 40)

    # --- resumable queries ----------------------------------------------------------------
    max_idle_default_s: int = _doc(
        "Idle time after which a handle expires, unless set per query.", 3600
    )
    max_idle_cap_s: int = _doc("Largest max_idle a query may ask for.", 86_400)
    index_phase_share: float = _doc(
        "A resumable query reads the HNSW index for its first rows, up to this share of the "
        "collection's rows (at least 1,000), then continues in exact order: one scan of the "
        "matching rows, then pages as cheap as before. Deep in the index walk the order drifts; "
        "1 keeps the index phase until its scan ends.",
        0.05,
    )
    max_handle_lifetime_s: int = _doc(
        "Age at which any handle expires, so no cursor holds back VACUUM forever.", 86_400
    )
    max_active_handles: int = _doc("Active handles allowed at once, server-wide.", 10_000)
    cursor_hosts: int = _doc("Dedicated connections holding resumable-query cursors.", 4)
    delivery_sync_commit: bool = _doc(
        "Wait until the record of the rows a page delivers is on disk before answering (the "
        "database's synchronous_commit): no row comes twice even after PostgreSQL itself "
        "crashes. false: answer once the record is committed, not yet flushed (saves a WAL "
        "flush per page); a PostgreSQL crash (not a pgpager restart) may then lose the last "
        "fraction of a second of records, and the rows of those pages may come again.",
        True,
    )
    http_fast_next: bool = _doc(
        "Serve a resumable query's next (native and Upstash API) ahead of the web framework's "
        "routing (same auth, body, answer and errors; about 0.15 ms less server CPU per call). "
        "false: through the framework like every other route.",
        True,
    )
    sweep_interval_s: float = _doc("Seconds between sweeper ticks.", 10.0)
    sweep_batch_size: int = _doc("Most handles or stored queries one sweeper tick acts on.", 500)
    closed_handle_retention_s: int = _doc(
        "Seconds a closed handle stays visible (a late next gets 410 with the reason).", 86_400
    )
    listener_retry_s: float = _doc(
        "Seconds before the NOTIFY listener reconnects after losing its connection (doubling "
        "up to 30 s while it keeps failing).",
        0.5,
    )
    drop_wait_s: float = _doc(
        "Seconds a collection drop waits for cursor hosts of running servers to let go of it.",
        10.0,
    )

    # --- stored queries -------------------------------------------------------------------
    stored_query_ttl_s: int = _doc("Seconds stored query results are kept.", 86_400)
    sql_statement_timeout_ms: int = _doc("Statement timeout for stored SQL queries.", 120_000)
    async_query_timeout_ms: int = _doc("Default timeout of an async stored query.", 1_800_000)
    stored_query_concurrency: int = _doc(
        "Stored queries this instance runs at once; more wait in state QUEUED.", 4
    )
    stored_query_concurrency_per_key: int = _doc(
        "Stored queries one API key runs at once on this instance; its others wait QUEUED "
        "while other keys' queries start (without API keys only the global limit applies).",
        2,
    )
    stored_query_max_rows: int = _doc(
        "Most rows one stored query may keep; a larger result fails the query.", 10_000_000
    )
    liveness_check_s: float = _doc(
        "Seconds between checks of the connection that shows this instance is alive (its "
        "stored queries are failed by other instances once it is gone).",
        5.0,
    )
    stored_query_max_row_kb: int = _doc(
        "Largest row a stored query may keep, in KB of JSON; a larger one fails the query.",
        1024,
    )
    stored_query_max_page_mb: int = _doc(
        "Most JSON one page of stored results carries, in MB: a page stops short of it (at "
        "least one row) and its next_cursor continues from there.",
        32,
    )
    stored_query_max_size_mb: int = _doc(
        "Most data one stored query may keep, in MB of JSON rows; a larger result fails the "
        "query and keeps nothing.",
        4096,
    )
    sql_reader_password: str | None = _doc(
        "Password of the reader roles that stored SQL queries log in as (one per API key, "
        "pgpager_reader_ followed by the key id). Empty: pgpager keeps a random one in the "
        "database and sets it (ALTER ROLE) when a login fails.",
        None,
    )
    sql_temp_file_limit_mb: int = _doc(
        "Temporary file space one stored SQL query may use, in MB (temp_file_limit of its "
        "reader role); a query that needs more fails with a 422. -1: no limit.",
        1024,
    )
    sql_work_mem_mb: int = _doc(
        "Memory each sort or hash of a stored SQL query may use before spilling to temporary "
        "files, in MB (work_mem of its reader role).",
        4,
    )

    # --- process ---------------------------------------------------------------------------
    stop_timeout_s: float = _doc(
        "Seconds background tasks and running stored queries get to stop when the server stops.",
        10.0,
    )

    # --- identity -------------------------------------------------------------------------
    instance_id: str = _doc(
        "Identifies this server process in the sessions table (random by default).",
        default_factory=lambda: uuid.uuid4().hex[:12],
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment; explicit ``overrides`` win (CLI flags, tests)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.keys()  # validate early: a bad key spec is a start-up error, not a runtime one
        if settings.log_format not in LOG_FORMATS:
            raise ValueError(
                f"{ENV_PREFIX}LOG_FORMAT={settings.log_format!r}: use {' or '.join(LOG_FORMATS)}"
            )
        return settings

    def keys(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_keys)

    def read_urls(self) -> tuple[str, ...]:
        return tuple(u.strip() for u in self.read_database_urls.split(",") if u.strip())

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("bool"):
        flag = BOOLEANS.get(raw.strip().lower())
        if flag is None:
            raise ValueError(
                f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a boolean "
                "(1/0, true/false, yes/no, on/off)"
            )
        return flag
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("Path"):
            return Path(raw).expanduser()
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected {kind}") from exc
    return raw


def documented_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = "" if f.default is None else str(f.default)
            if isinstance(f.default, bool):
                default = default.lower()
        elif f.name == "data_dir":
            default = "<user data dir>/pgpager/postgres"
        elif f.name == "model_cache_dir":
            default = "<user cache dir>/pgpager/models"
        else:
            default = "random"
        rows.append((ENV_PREFIX + f.name.upper(), default, f.metadata.get("doc", "")))
    return rows
