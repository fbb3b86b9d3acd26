"""Handles outlive their cursors: a killed-and-restarted server continues every handle."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import clustered, load


def drain(client: httpx.Client, base: str, handle: str, k: int) -> list[str]:
    got: list[str] = []
    while True:
        r = client.post(f"{base}/v1/resumable-queries/{handle}/next", json={"additional_k": k})
        assert r.status_code == 200, r.text
        got += [x["id"] for x in r.json()["results"]]
        if r.json()["state"] == "exhausted":
            return got


def test_restart_continues_every_handle(
    server_factory: Any, fresh_db_url: str, collection_name: str
) -> None:
    n, dim = 2000, 16
    server = server_factory(fresh_db_url)
    server.start()
    with httpx.Client(timeout=60) as http:
        r = http.post(
            f"{server.url}/v1/collections", json={"name": collection_name, "dimension": dim}
        )
        assert r.status_code == 201
        load(fresh_db_url, collection_name, clustered(n, dim, seed=21))
        delivered: dict[str, list[str]] = {}
        queries = clustered(4, dim, seed=99)
        for i, q in enumerate(queries):
            body: dict[str, Any] = {"vector": q.tolist(), "top_k": 30}
            if i == 3:
                body["filter"] = "HAS NOT FIELD anything"  # a filter that matches every row
            r = http.post(
                f"{server.url}/v1/collections/{collection_name}/resumable-queries", json=body
            )
            h = r.json()["handle"]
            delivered[h] = [x["id"] for x in r.json()["results"]]
            # Go some pages deep so position matters.
            for _ in range(i * 3):
                r = http.post(
                    f"{server.url}/v1/resumable-queries/{h}/next", json={"additional_k": 40}
                )
                delivered[h] += [x["id"] for x in r.json()["results"]]

        server.kill()  # SIGKILL: no clean shutdown, cursors die with the connections
        server.start()

        for h, before in delivered.items():
            status = http.get(f"{server.url}/v1/resumable-queries/{h}").json()
            assert status["state"] == "active"
            assert status["position"] == len(before)
            after = drain(http, server.url, h, 250)
            got = before + after
            assert len(got) == len(set(got)) == n, "no duplicate and no gap across the restart"
        assert "rehydrated" in server.output()


def test_metrics_report_handles(server_factory: Any, pg_url: str, collection_name: str) -> None:
    server = server_factory(pg_url)
    server.start()
    with httpx.Client(timeout=30) as http:
        http.post(f"{server.url}/v1/collections", json={"name": collection_name, "dimension": 3})
        http.post(
            f"{server.url}/v1/collections/{collection_name}/vectors",
            json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(5)]},
        )
        h = http.post(
            f"{server.url}/v1/collections/{collection_name}/resumable-queries",
            json={"vector": [1, 0, 0], "top_k": 1},
        ).json()["handle"]
        http.post(f"{server.url}/v1/resumable-queries/{h}/next", json={"additional_k": 1})
        text = http.get(f"{server.url}/metrics").text
        assert "pgpager_handles_active 1.0" in text
        assert 'pgpager_handle_events_total{event="started"} 1.0' in text
        assert "pgpager_next_latency_seconds_count 1.0" in text
        http.delete(f"{server.url}/v1/resumable-queries/{h}")
        text = http.get(f"{server.url}/metrics").text
        assert "pgpager_handles_active 0.0" in text
        assert 'pgpager_handle_events_total{event="stopped"} 1.0' in text
