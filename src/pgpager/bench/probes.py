"""What the benchmark reads beside the HTTP API: the machine, and the memory and CPU of
processes (``/proc``). What it reads from the database is in ``pgpager.store.probes``."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgpager import __version__
from pgpager.store.probes import database_facts


def machine(url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(_meminfo_kb("MemTotal") / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pgpager": __version__,
    }
    info.update(database_facts(url))
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kb(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def smaps_kb(pids: Iterable[int]) -> dict[str, int] | None:
    """Summed ``Pss`` and ``Pss_Anon`` (private heap: what cursors cost) of these processes;
    None when ``/proc`` does not let us read them (e.g. a PostgreSQL in another container)."""
    total = {"Pss": 0, "Pss_Anon": 0, "Rss": 0}
    seen = False
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        seen = True
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in total:
                total[key] += int(rest.split()[0])
    return total if seen else None


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(pids: Iterable[int]) -> float:
    """CPU seconds used so far by those of ``pids`` that are PostgreSQL processes on this
    machine; 0 when none is (a server in another container or on another machine, whose pids
    mean nothing here)."""
    total = 0.0
    for pid in pids:
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                continue
        except OSError:
            continue
        total += cpu_s(pid)
    return total
