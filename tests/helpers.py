"""Shared test helpers: fast loading of synthetic vectors straight into a collection table."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb


def clustered(n: int, dim: int, seed: int = 7, clusters: int = 20) -> np.ndarray[Any, Any]:
    """Vectors shaped like embeddings: a Gaussian mixture in a low-dimensional latent space."""
    rng = np.random.default_rng(seed)
    latent = min(16, dim)
    centers = rng.normal(size=(clusters, latent))
    which = rng.integers(0, clusters, size=n)
    z = centers[which] + 0.3 * rng.normal(size=(n, latent))
    proj = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    x = z @ proj + 0.05 * rng.normal(size=(n, dim))
    return x.astype(np.float32)


def load(
    url: str,
    table: str,
    vectors: np.ndarray[Any, Any],
    *,
    metadata: list[dict[str, Any] | None] | None = None,
    namespace: str = "",
    id_prefix: str = "",
) -> list[str]:
    """COPY rows into ``pgpager_data.<table>``; ids are ``<prefix><row number>``."""
    ids = [f"{id_prefix}{i}" for i in range(len(vectors))]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor().copy(
            f'COPY pgpager_data."{table}" (id, namespace, embedding, metadata) '
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "vector", "jsonb"])
            for i, v in enumerate(vectors):
                meta = metadata[i] if metadata else None
                copy.write_row((ids[i], namespace, v, None if meta is None else Jsonb(meta)))
        conn.execute(f'ANALYZE pgpager_data."{table}"')
    return ids


def exact_order(url: str, table: str, query: np.ndarray[Any, Any], op: str = "<=>") -> list[str]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            f'SELECT id FROM pgpager_data."{table}" ORDER BY embedding {op} %s, id',
            [query],
        ).fetchall()
    return [r[0] for r in rows]
