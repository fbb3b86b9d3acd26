"""``pgpager load``: binary COPY of .npy and .jsonl files, every value arriving as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from pgpager.errors import InvalidRequest
from pgpager.store.vectors import CopyBatch, _vectors_only_rows, binary_copy_rows

Client = AsyncTestClient[Any]


async def create(client: Client, name: str, dim: int) -> None:
    r = await client.post("/v1/collections", json={"name": name, "dimension": dim})
    assert r.status_code == 201, r.text


async def fetch(client: Client, name: str, ids: list[str], namespace: str = "") -> list[Any]:
    r = await client.post(
        f"/v1/collections/{name}/vectors/fetch", json={"ids": ids, "namespace": namespace}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["vectors"])


@pytest.mark.parametrize("defer_index", [False, True])
async def test_npy_rows_arrive_exactly(
    client: Client, collection_name: str, tmp_path: Path, defer_index: bool
) -> None:
    vectors = np.random.default_rng(3).standard_normal((1234, 5)).astype(np.float32)
    vectors[7] = [3.4028235e38, -1e-45, 0.0, -0.0, 1.0]  # float32 extremes survive the trip
    path = tmp_path / "v.npy"
    np.save(path, vectors)
    await create(client, collection_name, 5)
    loader = client.app.state.runtime.loader
    n = await loader.load(collection_name, path, namespace="n1", defer_index=defer_index, chunk=500)
    assert n == 1234
    ids = ["0", "7", "499", "500", "1233"]
    got = await fetch(client, collection_name, ids, "n1")
    for rid, row in zip(ids, got, strict=True):
        assert row["id"] == rid and row.get("metadata") is None and row.get("data") is None
        assert np.array_equal(np.asarray(row["vector"], dtype=np.float32), vectors[int(rid)])
    assert await fetch(client, collection_name, ["0"]) == [None], "the namespace was kept"
    r = await client.post(
        f"/v1/collections/{collection_name}/search",
        json={"vector": vectors[499].tolist(), "limit": 1, "namespace": "n1"},
    )
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "499"


async def test_jsonl_rows_arrive_exactly(
    client: Client, collection_name: str, tmp_path: Path
) -> None:
    lines = [
        {"id": "é-1", "vector": [1, 0, 0], "metadata": {"k": 'ü " \\ \n', "n": [1, {"x": None}]}},
        {"id": "plain", "vector": [0.5, 0.25, 0], "data": "text with 'quotes' and ✓"},
        {"id": "empty", "vector": [0, 0, 1], "metadata": {}, "data": ""},
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    await create(client, collection_name, 3)
    assert await client.app.state.runtime.loader.load(collection_name, path) == 3
    got = await fetch(client, collection_name, [x["id"] for x in lines])
    for line, row in zip(lines, got, strict=True):
        assert row["id"] == line["id"]
        assert row["vector"] == [float(v) for v in line["vector"]]
        assert row.get("metadata") == line.get("metadata")
        assert row.get("data") == line.get("data")


async def test_a_bad_npy_row_is_named_and_nothing_is_written(
    client: Client, collection_name: str, tmp_path: Path
) -> None:
    vectors = np.ones((900, 3), dtype=np.float32)
    vectors[777, 1] = np.nan
    path = tmp_path / "bad.npy"
    np.save(path, vectors)
    await create(client, collection_name, 3)
    with pytest.raises(InvalidRequest, match="row 777 has NaN"):
        await client.app.state.runtime.loader.load(collection_name, path, chunk=500)
    r = await client.get(f"/v1/collections/{collection_name}")
    assert r.json()["vector_count"] == 0


async def test_a_jsonl_number_too_large_for_a_float_is_named(
    client: Client, collection_name: str, tmp_path: Path
) -> None:
    """json reads a long integer as a Python int that no float can hold: a clear error naming
    the line, not an OverflowError."""
    path = tmp_path / "big.jsonl"
    path.write_text('{"id": "a", "vector": [1' + "0" * 400 + ", 0, 1]}\n")
    await create(client, collection_name, 3)
    with pytest.raises(InvalidRequest, match=r"big.jsonl:1: vector\[0\] = 10+ is not a finite"):
        await client.app.state.runtime.loader.load(collection_name, path)


@given(
    ids=st.lists(
        st.one_of(
            st.integers(0, 10**7).map(str),
            st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12
            ),
        ),
        min_size=1,
        max_size=300,
        unique=True,
    ),
    namespace=st.sampled_from(["", "n1", "ü-space"]),
    dim=st.integers(1, 9),
)
def test_rows_laid_out_by_numpy_are_the_bytes_of_the_row_loop(
    ids: list[str], namespace: str, dim: int
) -> None:
    """A .npy load lays whole rows out with numpy; the bytes are those of the row-by-row
    encoder (which rows with metadata take)."""
    vectors = np.random.default_rng(len(ids)).standard_normal((len(ids), dim)).astype(np.float32)
    fast = binary_copy_rows(CopyBatch(ids, namespace, vectors))
    loop = binary_copy_rows(CopyBatch(ids, namespace, vectors, metadata=[None] * len(ids)))
    assert fast == loop


def test_row_number_ids_take_the_numpy_layout() -> None:
    ids = [str(i) for i in range(2000)]
    assert _vectors_only_rows(CopyBatch(ids, "", np.zeros((2000, 4), np.float32))) is not None
