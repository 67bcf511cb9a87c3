"""CPU and memory of the app's process and of the whole machine, read from /proc."""

from __future__ import annotations

import os
import time

from .common import log

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BUSY = 0.15
"""Share of all CPUs above which the machine counts as busy with other work."""


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                values[key] = int(rest.split()[0])
    return values


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def machine_busy(seconds: float) -> float:
    """Share of all CPUs (0-1) busy over the next `seconds`."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet(limit: float) -> float | None:
    """Wait up to `limit` seconds for other processes to leave the CPUs idle; return the busy share seen
    last, or None when the wait is off. Something else running on the machine skews every number."""
    if limit <= 0:
        return None
    deadline = time.monotonic() + limit
    while True:
        busy = machine_busy(1.0)
        if busy < BUSY or time.monotonic() >= deadline:
            if busy >= BUSY:
                log(f"machine still {busy:.0%} busy with other work after {limit:g} s; going on")
            return busy
        log(f"machine {busy:.0%} busy with other work; waiting")
