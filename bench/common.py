"""Shared by the bench scripts: one-core pinning, timed whole-process runs, process-tree sampling by role, medians,
machine info, torchrun launches. Every bench runs from the repo root as `python -m bench.data.<name>` or
`python -m bench.train.<name>`."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PY = sys.executable
CORE = int(os.environ.get("BENCH_CORE", "0"))  # every measurement runs on this core alone (BENCH_CORE=1 if 0 is busy)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_core_env() -> dict[str, str]:
    """The environment of a pinned child: BLAS/OpenMP pools of one thread, the repo importable."""
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def pin_one_core() -> None:
    """Pin this process (and its future children) to CORE with one-thread math libraries."""
    os.environ.update({v: "1" for v in THREAD_VARS})
    os.sched_setaffinity(0, {CORE})


def run_pinned(cmd: list[str], *, log: Path | None = None, timeout_s: float = 3600) -> dict:
    """Run `cmd` under `taskset -c CORE`: wall seconds, CPU seconds of the whole tree, the largest
    single-process max RSS (wait4 rusage) and the peak summed RSS of the tree (sampled every 0.2 s)."""
    full = ["taskset", "-c", str(CORE), *cmd]
    sink = open(log, "wb") if log else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(full, cwd=REPO, env=one_core_env(), stdout=sink, stderr=subprocess.STDOUT)
    status, usage, tree_peak, tree_cpu = wait_sampling(proc, timeout_s=timeout_s)
    wall = time.perf_counter() - start
    if log:
        sink.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"{' '.join(full)} exited {code} after {wall:.1f} s\n{tail}")
    return {"wall_s": wall, "maxrss_mib": usage.ru_maxrss / 1024, "tree_rss_mib": tree_peak / 2**20,
            "cpu_s": tree_cpu, "rusage_cpu_s": usage.ru_utime + usage.ru_stime}


def wait_sampling(proc: subprocess.Popen, *, timeout_s: float, every_s: float = 0.2):
    """Reap `proc` with wait4, sampling its process tree meanwhile: peak summed RSS, and the CPU seconds of
    every process seen (forkserver children are reaped by the forkserver, so wait4's rusage can miss them)."""
    root, peak, cpu, deadline = psutil.Process(proc.pid), 0, {}, time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu[proc.pid] = usage.ru_utime + usage.ru_stime  # exact for the root (and what it reaped)
            return status, usage, peak, sum(cpu.values())
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{proc.args} ran past {timeout_s} s")
        rss = 0
        for p in [root, *safe_children(root)]:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    if p.pid != proc.pid:
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system
            except psutil.Error:
                continue  # exited between listing and reading
        peak = max(peak, rss)
        time.sleep(every_s)


def safe_children(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.Error:
        return []


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict:
    """CPU model (lscpu), cores, Python: printed with every result."""
    model = "unknown"
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {"cpu": model, "cores": os.cpu_count(), "pinned_core": CORE, "python": platform.python_version()}


def save_report(name: str, report: dict) -> int:
    """bench/out/<name>.json and stdout; the exit status of a bench script."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def torchrun_json(module: str, ranks: int, argv: list[str], *, timeout_s: float = 3600) -> dict:
    """Run `python -m module --child argv` on `ranks` local gloo ranks (one math thread each); rank 0 prints one JSON
    line."""
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m", module, "--child",
           *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=timeout_s,
                          env={**one_core_env(), "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{module} on {ranks} ranks exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))


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
            for p in [root, *safe_children(root)]:
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
