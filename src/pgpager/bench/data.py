"""Benchmark data: seeded synthetic vectors shaped like embeddings, or a ``.npy`` of real ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, np.dtype[np.float32]]


def clustered(n: int, dim: int, seed: int = 7, clusters: int = 20, held_out: int = 0) -> Array:
    """Vectors shaped like embeddings: a Gaussian mixture in a 16-d latent space, projected to
    ``dim`` dimensions, plus a little isotropic noise. Deterministic for a given seed.

    ``held_out`` more vectors of the same mixture follow the ``n`` (from a stream of their own:
    the first ``n`` do not depend on it)."""
    rng = np.random.default_rng(seed)
    latent = min(16, dim)
    centers = rng.normal(size=(clusters, latent))
    which = rng.integers(0, clusters, size=n)
    z = centers[which] + 0.3 * rng.normal(size=(n, latent))
    proj = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    x = z @ proj + 0.05 * rng.normal(size=(n, dim))
    if held_out:
        more = np.random.default_rng([seed, held_out])
        z = centers[more.integers(0, clusters, size=held_out)]
        z = z + 0.3 * more.normal(size=(held_out, latent))
        x = np.concatenate([x, z @ proj + 0.05 * more.normal(size=(held_out, dim))])
    out: Array = x.astype(np.float32)
    return out


@dataclass(frozen=True)
class Dataset:
    """The rows to load (as a ``.npy`` file, ids are row numbers) and query vectors."""

    path: Path
    rows: int
    dim: int
    queries: Array
    source: str
    # More query vectors, for the figures that need many cheap samples (first-page recall).
    more_queries: Array

    def sample(self, n: int, seed: int) -> Array:
        """``n`` query vectors near random rows: used where every client needs its own query."""
        return near_rows(self.path, n, seed)


def near_rows(path: Path, n: int, seed: int) -> Array:
    """``n`` vectors close to random rows of the ``.npy`` at ``path`` (a row plus a little
    noise), so they fall where the data is, as real queries do."""
    rng = np.random.default_rng(seed)
    arr = np.load(path, mmap_mode="r")
    rows = int(arr.shape[0])
    picks = np.sort(rng.choice(rows, size=min(n, rows), replace=False))
    base = np.asarray(arr[picks], dtype=np.float32)
    if len(base) < n:
        base = base[rng.integers(0, len(base), size=n)]
    noise = 0.05 * rng.normal(size=base.shape) * float(base.std() or 1.0)
    out: Array = (base + noise).astype(np.float32)
    return out


def synthetic(workdir: Path, rows: int, dim: int, seed: int, queries: int, more: int) -> Dataset:
    """``rows`` mixture vectors written to ``workdir``; ``queries`` more from the same mixture,
    held out (not loaded), are the query vectors, and ``more`` after them the extra ones."""
    x = clustered(rows + queries, dim, seed=seed, held_out=more)
    path = workdir / f"bench-{rows}x{dim}-seed{seed}.npy"
    np.save(path, x[:rows])
    return Dataset(
        path=path,
        rows=rows,
        dim=dim,
        queries=x[rows : rows + queries],
        source=f"synthetic Gaussian mixture (16-d latent, seed {seed})",
        more_queries=x[rows + queries :],
    )


def from_npy(path: Path, queries: int, seed: int, more: int) -> Dataset:
    """Real embeddings from a 2-d ``.npy``; queries are random rows plus a little noise."""
    arr = np.load(path, mmap_mode="r")
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{path}: expected a 2-d array of vectors, got shape {arr.shape}")
    rows, dim = int(arr.shape[0]), int(arr.shape[1])
    return Dataset(
        path=path,
        rows=rows,
        dim=dim,
        queries=near_rows(path, queries, seed),
        source=f"{path.name} (real embeddings)",
        more_queries=near_rows(path, more, seed + 1),
    )


_SUBJECTS = (
    "The old fisherman",
    "A young engineer",
    "My neighbour's dog",
    "The city council",
    "A tired nurse",
    "The football coach",
    "Our small startup",
    "The chemistry teacher",
    "A famous pianist",
    "The night train",
    "A curious child",
    "The hotel manager",
)
_VERBS = (
    "repaired",
    "described",
    "painted",
    "forgot",
    "celebrated",
    "sold",
    "studied",
    "cooked",
    "photographed",
    "questioned",
    "delivered",
    "rebuilt",
)
_OBJECTS = (
    "a wooden boat",
    "the quarterly budget",
    "a bowl of soup",
    "the broken bridge",
    "an ancient map",
    "the new vaccine",
    "a jazz record",
    "the solar panels",
    "a stack of letters",
    "the winning goal",
    "a mountain trail",
    "the spring festival",
)
_PLACES = (
    "near the harbour",
    "before sunrise",
    "in the crowded market",
    "after the storm",
    "at the village school",
    "during the long winter",
    "on a quiet Sunday",
    "inside the museum",
    "by the river",
    "at the airport",
)


def sentences(n: int, seed: int) -> list[str]:
    """``n`` English sentences, varied and seeded: text for the embedding benchmark."""
    rng = np.random.default_rng(seed)
    parts = (_SUBJECTS, _VERBS, _OBJECTS, _PLACES)
    picks = [rng.integers(0, len(p), size=n) for p in parts]
    return [
        " ".join(p[int(i[k])] for p, i in zip(parts, picks, strict=True)) + "." for k in range(n)
    ]
