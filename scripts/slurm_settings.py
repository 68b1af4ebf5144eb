"""Run a Refinery job on Slurm: a dask-jobqueue SLURMCluster of worker jobs, the pipeline on it, then cancel them.

    scripts/run_slurm.sh [LAUNCHER FLAGS] JOB [PIPELINE FLAGS...]

Everything after JOB goes to `python -m pipelines.JOB` unchanged. Each launcher flag also reads an environment
variable REFINERY_SLURM_<FLAG> (a flag beats the variable, the variable beats the default). The scheduler runs in
this process, on the login node; the workers run the pipeline code, so they need the same code and packages
(--python, --prologue) and the outputs must be on storage every node sees.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

JOBS = ("werp", "swallowcode", "swallowmath", "tokenize")
ENV_PREFIX = "REFINERY_SLURM_"
# Slurm's own time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
WALLTIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}")
TOKEN = re.compile(r"[^\s'\"]+")  # what goes into an #SBATCH line, which Slurm splits at spaces


class LauncherError(RuntimeError):
    """A flag or variable the user fixes; printed as one line, exit 2."""


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError("must be a whole number, 1 or more")
    return int(text)


def size_bytes(text: str) -> int:
    """Slurm's --mem syntax (64G = 64 GiB) or Dask's (64GB = 64e9 bytes, 64GiB): what users type on either side."""
    from dask.utils import parse_bytes

    slurm = re.fullmatch(r"(\d+)([KMGT])", text.strip())
    try:
        value = int(slurm[1]) * 1024 ** ("KMGT".index(slurm[2]) + 1) if slurm else parse_bytes(text)
    except ValueError:
        value = 0
    if value < 2 ** 20:
        raise ValueError("is not a memory size of 1 MiB or more: write e.g. 64G (GiB, as Slurm) or 500GB")
    return value


def port(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 65535:
        raise ValueError("is not a TCP port: 1-65535, or 0 for any free one")
    return int(text)


def walltime(text: str) -> str:
    if not WALLTIME.fullmatch(text):
        raise ValueError("is not a Slurm time: use HH:MM:SS, D-HH:MM:SS or minutes")
    return text


def token(text: str) -> str:
    if not TOKEN.fullmatch(text):
        raise ValueError("must be one word without spaces or quotes")
    return text


def sbatch_option(text: str) -> str:
    if not text.startswith("-") or not TOKEN.fullmatch(text):
        raise ValueError("must be one sbatch option written as --name=value without spaces, e.g. "
                         "--constraint=skylake")
    return text


def scheduler_address(text: str) -> str:
    if not re.fullmatch(r"((tcp|tls)://)?[^\s:/]+:\d+", text):
        raise ValueError("is not a Dask scheduler address: write tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")
    return text


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError("must be NAME=VALUE, e.g. OMP_NUM_THREADS=1")
    if key == "PYTHONHASHSEED":
        raise ValueError("sets what Dask's nanny sets: it gives every worker process one hash seed and the launcher "
                         "hands that seed to the pipeline; drop it")
    return key, value


def setting(default: Any, parse: Callable[[str], Any], text: str, *, many: Callable[[str], list] | None = None) -> Any:
    """A field that is also a flag and a variable: how to read one value, its help, how a variable holds many."""
    # A field factory for the dataclass below.
    # pylint: disable-next=invalid-field-call
    return field(default=default, metadata={"parse": parse, "help": text, "many": many})


@dataclass(frozen=True, kw_only=True, slots=True)
class SlurmSettings:
    """Resolved launcher settings; field x is flag --x (dashes, no _s) and variable REFINERY_SLURM_X."""

    jobs: int = setting(2, positive_int, "Slurm jobs to submit; each is one share of a node")
    cores: int = setting(8, positive_int, "CPUs per job (#SBATCH --cpus-per-task)")
    memory: int = setting(32 * 2 ** 30, size_bytes, "memory per job (#SBATCH --mem): 64G is Slurm's 64 GiB, 64GB "
                          "Dask's 64e9 bytes; split evenly over the job's worker processes")
    processes: int | None = setting(None, positive_int, "Dask worker processes per job, each with cores/processes "
                                    "threads; default one per core (Beam's Python DoFns hold the GIL)")
    walltime: str = setting("01:00:00", walltime, "time limit per job (#SBATCH -t): HH:MM:SS or D-HH:MM:SS")
    partition: str | None = setting(None, token, "Slurm partition (#SBATCH -p)")
    account: str | None = setting(None, token, "Slurm account to charge (#SBATCH -A)")
    qos: str | None = setting(None, token, "Slurm quality of service (#SBATCH --qos)")
    job_extra: tuple[str, ...] = setting((), sbatch_option, "another #SBATCH option, e.g. --constraint=skylake "
                                         "(repeat the flag; the variable holds several, space-separated)",
                                         many=shlex.split)
    job_name: str | None = setting(None, token, "Slurm job name (#SBATCH -J); default refinery-JOB")
    python: str = setting(sys.executable, str, "the workers' Python: a venv every node sees, with refinery[dask] "
                          "installed; default this launcher's")
    prologue: tuple[str, ...] = setting((), str, "a shell line the job runs before the worker, e.g. 'module load "
                                        "python/3.11' or 'source /shared/venv/bin/activate' (repeatable)",
                                        many=lambda text: [text])
    env: tuple[tuple[str, str], ...] = setting((), env_pair, "NAME=VALUE exported to the workers and the pipeline "
                                               "(repeatable; the variable holds several, space-separated)",
                                               many=shlex.split)
    local_directory: str = setting("${TMPDIR:-/tmp}", str, "node-local folder for worker spill; $VARS expand on the "
                                   "node")
    interface: str | None = setting(None, token, "network interface of the workers, e.g. ib0 (and of the "
                                    "scheduler, unless --scheduler-interface)")
    scheduler_interface: str | None = setting(None, token, "network interface of this machine for the scheduler")
    dashboard_port: int = setting(8787, port, "port of the Dask dashboard on this machine; 0 = any free port")
    log_directory: str | None = setting(None, token, "folder for the worker jobs' logs; default slurm-ID.out in the "
                                        "submit folder")
    death_timeout_s: int = setting(60, positive_int, "seconds a worker waits for an unreachable scheduler before "
                                   "it exits, ending its job")
    wait_timeout_s: int = setting(600, positive_int, "seconds to wait for --min-workers before giving up")
    min_workers: int | None = setting(None, positive_int, "worker processes to wait for before the pipeline "
                                      "starts; default all (jobs x processes), or 1 with --address")
    address: str | None = setting(None, scheduler_address, "run on this running Dask scheduler (tcp://HOST:8786) "
                                  "instead; no Slurm jobs are submitted and the cluster is left running")

    def __post_init__(self) -> None:
        processes = self.processes or self.cores
        if self.cores % processes:
            raise LauncherError(f"--cores ({self.cores}) is not a multiple of --processes ({processes}); "
                                f"use a divisor of {self.cores}")
        if self.min_workers is not None and not self.address and self.min_workers > self.jobs * processes:
            raise LauncherError(f"--min-workers ({self.min_workers}) > --jobs x --processes ({self.jobs} x "
                                f"{processes}); lower --min-workers or ask for more jobs")

    @property
    def workers(self) -> int:
        """Worker processes to wait for: all that were asked for, or at least one on someone else's cluster."""
        return self.min_workers or (1 if self.address else self.jobs * (self.processes or self.cores))


def flag(name: str) -> str:
    """--wait-timeout for wait_timeout_s: the unit is in the help, not in what users type."""
    return "--" + name.removesuffix("_s").replace("_", "-")


def env_var(name: str) -> str:
    return ENV_PREFIX + flag(name)[2:].replace("-", "_").upper()


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, str, list[str]]:
    """The launcher's flags (None where not given), the job, and the pipeline's flags exactly as typed."""
    parser = argparse.ArgumentParser(prog="run_slurm.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(SlurmSettings):
        shown = f"{f.default / 2 ** 30:g}G" if f.name == "memory" else f.default
        shown = f"; default {shown}" if shown not in (None, ()) and "default" not in f.metadata["help"] else ""
        parser.add_argument(flag(f.name), dest=f.name, action="append" if f.metadata["many"] else "store",
                            help=f"{f.metadata['help']}{shown} [{env_var(f.name)}]")
    parser.add_argument("--print-job-script", action="store_true",
                        help="print the sbatch script of one worker job and the pipeline command; submit nothing")
    parser.add_argument("job", choices=JOBS, help="the pipeline: python -m pipelines.JOB")
    parser.add_argument("pipeline_args", nargs=argparse.REMAINDER, help="flags for the pipeline, passed unchanged")
    args = parser.parse_args(argv)
    return args, args.job, args.pipeline_args


def checked(parse: Callable[[str], Any], raw: str, source: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise LauncherError(f"{source} {raw!r} {exc}") from None


def resolve(args: argparse.Namespace, environ: dict[str, str]) -> SlurmSettings:
    """Flag, else REFINERY_SLURM_* variable, else default; a bad value names where it came from and why."""
    values: dict[str, Any] = {}
    for f in fields(SlurmSettings):
        parse, many = f.metadata["parse"], f.metadata["many"]
        given, var = getattr(args, f.name), env_var(f.name)
        if given is not None:
            source, raw = flag(f.name), given
        elif environ.get(var):
            source, raw = var, (many(environ[var]) if many else environ[var])
        else:
            continue
        values[f.name] = tuple(checked(parse, v, source) for v in raw) if many else checked(parse, raw, source)
    return SlurmSettings(**values)
