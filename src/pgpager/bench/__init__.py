"""``pgpager bench``: pagination cost, latency, capacity and recall, measured side by side in one
run against a real ``pgpager serve`` on the same data (issue 8)."""

from pgpager.errors import PgpagerError


class BenchFailed(PgpagerError):
    """The benchmark could not complete."""

    code = "bench_failed"
