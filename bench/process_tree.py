"""Run a command and sample its whole process tree: wall time, peak RSS and CPU seconds per process, by role
(the runner, Beam worker processes, extraction sandboxes, Dask processes), and the CPU the rest of the machine used
meanwhile, so a figure taken on a shared machine says how loaded it was."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

ROLES = (("sdk_worker_main", "beam_worker"), ("multiprocessing.forkserver", "sandbox"),
         ("spawn_main", "dask_process"), ("distributed", "dask_process"))
SHELLS = ("sh", "bash", "dash")


def role_of(proc: psutil.Process, root: int) -> str:
    """What a process in the tree is, from its command line (the root is the job's own process)."""
    if proc.pid == root:
        return "runner"
    try:
        line, name = " ".join(proc.cmdline()), proc.name()
    except psutil.Error:
        return "other"
    if name in SHELLS:  # Beam starts each worker through `sh -c`
        return "other"
    return next((role for marker, role in ROLES if marker in line), "other")


def busy_cpu_s() -> float:
    """CPU seconds every core of the machine has spent not idle since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def run_tree(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout_s: float = 3600,
             every_s: float = 0.2) -> dict:
    """Run `cmd`, sample its tree every `every_s`: per-process peak RSS and CPU, grouped by role; raise on failure."""
    load_before, busy_before = os.getloadavg()[0], busy_cpu_s()
    start = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        root, seen, deadline = psutil.Process(proc.pid), {}, time.monotonic() + timeout_s
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{cmd} ran past {timeout_s} s")
            for p in [root, *_children(root)]:
                try:
                    with p.oneshot():
                        rss, cpu = p.memory_info().rss, sum(p.cpu_times()[:2])
                    entry = seen.setdefault(p.pid, {"role": role_of(p, proc.pid), "peak_rss": 0, "cpu_s": 0.0})
                    entry["peak_rss"], entry["cpu_s"] = max(entry["peak_rss"], rss), max(entry["cpu_s"], cpu)
                except psutil.Error:
                    continue  # exited between listing and reading
            time.sleep(every_s)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} after {wall:.1f} s\n"
                           f"{log.read_text(errors='replace')[-3000:]}")
    ours = sum(e["cpu_s"] for e in seen.values())
    others = max(0.0, busy_cpu_s() - busy_before - ours)  # approximate: children that exit unsampled count here
    return {"wall_s": round(wall, 2), "cpu_s": round(ours, 1), "roles": by_role(seen),
            "others_cores": round(others / wall, 2), "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def by_role(seen: dict[int, dict]) -> dict[str, dict]:
    """Per role: how many processes, the largest single-process peak RSS, their summed peaks, their CPU seconds."""
    roles: dict[str, dict] = {}
    for entry in seen.values():
        r = roles.setdefault(entry["role"], {"processes": 0, "max_peak_rss_mib": 0.0, "sum_peak_rss_mib": 0.0,
                                             "cpu_s": 0.0})
        mib = entry["peak_rss"] / 2**20
        r["processes"] += 1
        r["max_peak_rss_mib"] = round(max(r["max_peak_rss_mib"], mib), 1)
        r["sum_peak_rss_mib"] = round(r["sum_peak_rss_mib"] + mib, 1)
        r["cpu_s"] = round(r["cpu_s"] + entry["cpu_s"], 1)
    return roles


def _children(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.Error:
        return []
