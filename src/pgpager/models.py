"""SQLAlchemy models of the service tables that Alembic manages (schema ``pgpager``).

Collection tables in ``pgpager_data`` are created at run time by the store, not here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "pgpager"
DATA_SCHEMA = "pgpager_data"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (
        CheckConstraint("metric IN ('cosine', 'euclidean', 'dot_product')", name="metric_known"),
        CheckConstraint("dimension BETWEEN 1 AND 16000", name="dimension_range"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    dimension: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(Text)
    hnsw_m: Mapped[int] = mapped_column(Integer, server_default="16")
    hnsw_ef_construction: Mapped[int] = mapped_column(Integer, server_default="64")
    embedding_model: Mapped[str | None] = mapped_column(Text)
    table_name: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class QuerySession(Base):
    """One row per resumable-query handle. The row is the truth; the cursor is a cache."""

    __tablename__ = "query_sessions"
    __table_args__ = (
        CheckConstraint(
            "state IN ('active', 'exhausted', 'stopped', 'expired')", name="state_known"
        ),
        CheckConstraint("phase IN ('index', 'exact')", name="phase_known"),
        Index(
            "query_sessions_active_id_idx",
            "id",
            postgresql_where="state = 'active'",
        ),
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    collection: Mapped[str] = mapped_column(
        Text, ForeignKey("collections.name", ondelete="CASCADE")
    )
    namespace: Mapped[str] = mapped_column(Text, server_default="")
    query: Mapped[dict[str, Any]] = mapped_column(JSONB)
    position: Mapped[int] = mapped_column(BigInteger, server_default="0")
    phase: Mapped[str] = mapped_column(Text, server_default="index")
    state: Mapped[str] = mapped_column(Text, server_default="active")
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_used_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    max_idle_s: Mapped[int] = mapped_column(Integer)
    max_lifetime_s: Mapped[int] = mapped_column(Integer)
    owner_instance: Mapped[str | None] = mapped_column(Text)
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    cursor_name: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class QuerySessionRow(Base):
    """Ids a handle has delivered: no row is delivered twice, and the exact phase skips them.
    No foreign key (it cost a check per id on every ``next``): a trigger on ``query_sessions``
    deletes a session's ids with it (migration 0008)."""

    __tablename__ = "query_session_rows"

    session_id: Mapped[str] = mapped_column(Text, primary_key=True)
    row_id: Mapped[str] = mapped_column(Text, primary_key=True)


class StoredQuery(Base):
    """One row per stored query (a SQL query or a vector search run once, its rows kept)."""

    __tablename__ = "stored_queries"
    __table_args__ = (
        CheckConstraint("kind IN ('sql', 'vector_search')", name="kind_known"),
        CheckConstraint(
            "state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')",
            name="state_known",
        ),
        Index("stored_queries_owner_idx", "api_key_id", "created_at"),
        Index("stored_queries_expires_idx", "expires_at"),
        Index(
            "stored_queries_unfinished_idx",
            "owner_instance",
            postgresql_where="state IN ('QUEUED', 'RUNNING')",
        ),
    )

    query_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text, server_default="QUEUED")
    error: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[str | None] = mapped_column(Text)
    owner_instance: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    elapsed_time_ms: Mapped[int | None] = mapped_column(BigInteger)
    doc_count: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    results_total_doc_count: Mapped[int | None] = mapped_column(BigInteger)


class StoredQueryRow(Base):
    """The kept rows of a stored query, in result order (``ordinal`` from 0)."""

    __tablename__ = "stored_query_rows"

    query_id: Mapped[str] = mapped_column(
        UUID(as_uuid=False),
        ForeignKey("stored_queries.query_id", ondelete="CASCADE"),
        primary_key=True,
    )
    ordinal: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    row: Mapped[Any] = mapped_column(JSONB)


class StoredQuerySecret(Base):
    """One row: the HMAC key of stored-query cursors and the reader role's password."""

    __tablename__ = "stored_query_secret"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=true())
    cursor_key: Mapped[str] = mapped_column(Text)
    reader_password: Mapped[str] = mapped_column(Text)
