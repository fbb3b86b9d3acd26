"""SQLAlchemy models of the service tables that Alembic manages (schema ``pgpager``).

Collection tables in ``pgpager_data`` are created at run time by the store, not here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
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
        Index("query_sessions_active_idx", "last_used_at", postgresql_where="state = 'active'"),
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
    """Ids a handle has delivered: no row is delivered twice, and the exact phase skips them."""

    __tablename__ = "query_session_rows"

    session_id: Mapped[str] = mapped_column(
        Text, ForeignKey("query_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    row_id: Mapped[str] = mapped_column(Text, primary_key=True)
