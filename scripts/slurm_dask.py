"""The launcher behind scripts/run_slurm.sh: render the worker job, start the SLURMCluster, run the pipeline on it."""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from slurm_settings import LauncherError, SlurmSettings, parse_args, resolve

REPO = Path(__file__).resolve().parents[1]
RESERVED_FLAGS = ("--runner", "--dask_client_address", "--dask_scheduler_file")  # set here, by the launcher
PLAIN = re.compile(r"[\w@%+=:,./${}-]+")  # a shell word that needs no quotes ($ kept: expands on the node)
log = logging.getLogger("run_slurm")


class Interrupted(BaseException):
    """SIGTERM or SIGHUP (scancel of the launcher, a closed SSH session): like Ctrl-C, no `except Exception` eats it."""


def shell_word(text: str) -> str:
    """Quote for the job script's command line; $VARS stay live so ${TMPDIR} means the compute node's."""
    if PLAIN.fullmatch(text):
        return text
    return '"' + re.sub(r'(["\\`])', r"\\\1", text) + '"'


def cluster_kwargs(settings: SlurmSettings, *, job: str) -> dict[str, Any]:
    """SLURMCluster keywords: resources, the worker environment, and the scheduler this process runs."""
    # Our DoFns start child processes (extractor sandbox, pylint pools), which daemonic Dask workers may not.
    exports = ["export DASK_DISTRIBUTED__WORKER__DAEMON=False"]
    exports += [f"export {key}={shlex.quote(value)}" for key, value in settings.env]
    exports.append(f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}")  # the same checkout
    scheduler = {"dashboard_address": f":{settings.dashboard_port}"}
    if settings.scheduler_interface:
        scheduler["interface"] = settings.scheduler_interface
    return dict(
        cores=settings.cores, memory=str(settings.memory), processes=settings.processes or settings.cores,
        walltime=settings.walltime, queue=settings.partition, account=settings.account,
        job_extra_directives=[*([f"--qos={settings.qos}"] if settings.qos else []), *settings.job_extra],
        job_name=settings.job_name or f"refinery-{job}", python=shell_word(settings.python),
        job_script_prologue=[*settings.prologue, *exports], local_directory=shell_word(settings.local_directory),
        interface=settings.interface, log_directory=settings.log_directory,
        death_timeout=settings.death_timeout_s, scheduler_options=scheduler)


def job_script(settings: SlurmSettings, *, job: str) -> str:
    """What one worker job submits, rendered by dask-jobqueue itself (no scheduler, no Slurm needed)."""
    from dask_jobqueue.slurm import SLURMJob

    kwargs = cluster_kwargs(settings, job=job)
    kwargs.pop("scheduler_options")
    return SLURMJob(scheduler="tcp://<scheduler-address>:<port>", name="<worker-name>", **kwargs).job_script()


def check_pipeline_args(pipeline_args: Sequence[str]) -> None:
    """The runner flags are ours: a second --runner would silently win over the cluster we just started."""
    reserved = [a for a in pipeline_args if a.split("=", 1)[0] in RESERVED_FLAGS]
    if reserved:
        raise LauncherError(f"pipeline flag {reserved[0]!r} is set by the launcher; drop it (use --address for an "
                            f"existing Dask scheduler)")


def pipeline_command(job: str, pipeline_args: Sequence[str], *, address: str) -> list[str]:
    """`python -m pipelines.JOB` on the cluster, the user's flags after ours and untouched."""
    check_pipeline_args(pipeline_args)
    return [sys.executable, "-m", f"pipelines.{job}", "--runner=DaskRunner", f"--dask_client_address={address}",
            *pipeline_args]


def pipeline_env(settings: SlurmSettings, *, hash_seed: str | None) -> dict[str, str]:
    """The driver gets the workers' variables, checkout and hash seed, so both sides import and hash alike."""
    env = {**os.environ, **dict(settings.env)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    return env


def run_pipeline(command: list[str], *, env: dict[str, str], grace_s: float = 60.0) -> int:
    """The pipeline in its own session, so one Ctrl-C reaches it once, from us, and it can clean its staging."""
    log.info("running: %s", shlex.join(command))
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


def wait_for_workers(client: Any, settings: SlurmSettings, *, job_ids: Sequence[str]) -> None:
    """Block until enough workers joined; on timeout say which jobs to look at and what to change."""
    deadline, seen, want = time.monotonic() + settings.wait_timeout_s, -1, settings.workers
    while (have := len(client.nthreads())) < want:
        if time.monotonic() > deadline:
            ids, logs = " ".join(job_ids), settings.log_directory or "slurm-<jobid>.out in the submit folder"
            where = (f"Slurm jobs {ids} may still be queued (squeue -j {ids.replace(' ', ',')}) or failing (logs: "
                     f"{logs}); raise --wait-timeout, lower --min-workers, or check --partition/--account/--qos"
                     if job_ids else f"the cluster at {settings.address} has fewer; lower --min-workers")
            raise LauncherError(f"only {have} of {want} Dask workers joined within {settings.wait_timeout_s} s; "
                                f"{where}")
        if have != seen:
            log.info("%d of %d Dask workers joined; waiting up to %d s", have, want, settings.wait_timeout_s)
            seen = have
        time.sleep(1.0)
    log.info("%d Dask workers joined", have)


def ready_workers(client: Any, settings: SlurmSettings, *, job: str, job_ids: Sequence[str]) -> str | None:
    """Wait for the workers, check they import the pipeline, and return the hash seed they share."""
    wait_for_workers(client, settings, job_ids=job_ids)
    try:  # a worker without refinery (wrong --python, no activation in --prologue) fails here, not mid-run
        client.run(exec, f"import pipelines.{job}")
    except ImportError as exc:
        raise LauncherError(f"the Dask workers cannot import pipelines.{job} ({exc}); point --python at an "
                            f"environment with refinery[dask] installed, or activate one in --prologue") from None
    seeds = client.run(os.getenv, "PYTHONHASHSEED")  # Dask's nanny gives its workers one (distributed PR 8400)
    if len(set(seeds.values())) > 1 or (None in seeds.values() and len(seeds) > 1):
        shown = sorted(map(str, seeds.values()))
        raise LauncherError(f"the Dask workers hash with different seeds (PYTHONHASHSEED: {shown}), so a shuffle "
                            f"would split equal keys; start them with a nanny (dask worker's default) or export one "
                            f"PYTHONHASHSEED on every worker")
    return next(iter(seeds.values()), None)


def run_on(address: str, settings: SlurmSettings, *, job: str, pipeline_args: Sequence[str],
           job_ids: Sequence[str]) -> int:
    """Ready the workers at `address`, then run the pipeline there with their hash seed."""
    from distributed import Client

    try:
        client = Client(address)
    except OSError as exc:
        raise LauncherError(f"cannot reach the Dask scheduler at {address} ({exc}); check --address and that this "
                            f"machine can reach it") from None
    with client:
        seed = ready_workers(client, settings, job=job, job_ids=job_ids)
    command = pipeline_command(job, pipeline_args, address=address)
    return run_pipeline(command, env=pipeline_env(settings, hash_seed=seed))


def start_cluster(settings: SlurmSettings, *, job: str) -> Any:
    """The scheduler, here; a login node's interfaces differ from the compute nodes', so name them if wrong."""
    from dask_jobqueue import SLURMCluster

    try:
        return SLURMCluster(**cluster_kwargs(settings, job=job))
    except RuntimeError as exc:  # "Cluster failed to start", caused by the scheduler's ValueError
        if "not a valid network interface" not in str(exc.__cause__):
            raise
        raise LauncherError(f"{exc.__cause__}; the scheduler runs on this machine ({socket.gethostname()}): pass "
                            f"--scheduler-interface with one of those, and --interface for the workers'") from None


def dashboard_hint(cluster: Any) -> str:
    """Where the dashboard is and the SSH tunnel to it: login nodes rarely expose their ports."""
    if importlib.util.find_spec("bokeh") is None:
        return "no Dask dashboard: bokeh is not installed (pip install 'bokeh>=3.1')"
    port = urlsplit(cluster.dashboard_link).port
    host = socket.gethostname()
    return (f"dashboard http://{host}:{port}/status; from your laptop: ssh -N -L {port}:localhost:{port} "
            f"<you>@<this login node>, then open http://localhost:{port}/status")


def submit(cluster: Any, settings: SlurmSettings) -> list[str]:
    """Scale to --jobs and return their ids; sbatch's own refusal (partition, account, qos) becomes the error."""
    from distributed.core import Status

    loop_log = logging.getLogger("tornado.application")  # logs a refusal as a traceback; we say it in one line
    level = loop_log.level
    loop_log.setLevel(logging.CRITICAL)
    try:
        cluster.scale(jobs=settings.jobs)  # submits in the background and keeps errors to itself
        deadline = time.monotonic() + settings.wait_timeout_s
        while len(cluster.workers) < settings.jobs and time.monotonic() < deadline:
            time.sleep(0.1)
        cluster.sync(asyncio.sleep, 0)  # the loop has finished with the submissions (and their log lines)
    finally:
        loop_log.setLevel(level)
    refused = [j for j in cluster.workers.values() if j.job_id is None]
    if refused:
        try:
            cluster.sync(refused[0].start)  # once more, in this thread, to hear why
        except RuntimeError as exc:
            for j in refused:
                j.status = Status.closed  # never queued, nothing to cancel
            reason = str(exc).rpartition("stderr:")[2].strip()
            raise LauncherError(f"sbatch refused the worker job: {reason}; check --partition, --account, --qos and "
                                f"--job-extra (--print-job-script shows the script)") from None
    return [str(j.job_id) for j in cluster.workers.values()]


def launch(settings: SlurmSettings, *, job: str, pipeline_args: Sequence[str]) -> int:
    """Submit the worker jobs, wait for them, run the pipeline; the jobs are cancelled however this ends."""
    check_pipeline_args(pipeline_args)  # before anything is submitted
    if settings.address:  # someone else's cluster: run on it, leave it running
        return run_on(settings.address, settings, job=job, pipeline_args=pipeline_args, job_ids=())
    cluster = start_cluster(settings, job=job)
    try:
        ids = submit(cluster, settings)
        log.info("Slurm jobs %s submitted; scheduler %s; %s", " ".join(ids), cluster.scheduler_address,
                 dashboard_hint(cluster))
        return run_on(cluster.scheduler_address, settings, job=job, pipeline_args=pipeline_args, job_ids=ids)
    finally:  # a second Ctrl-C must not leave jobs behind
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        log.info("closing the cluster: cancelling %d Slurm jobs",
                 sum(1 for j in cluster.workers.values() if j.job_id))
        cluster.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, through launch's finally, which cancels the jobs."""
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 or the pipeline's code; 2 with one line for what the user fixes; 128+N when stopped by signal N."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run_slurm: %(message)s")
    args, job, pipeline_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = resolve(args, dict(os.environ))
        if args.print_job_script:
            print(job_script(settings, job=job), end="")
            command = pipeline_command(job, pipeline_args, address=settings.address or "<scheduler-address>")
            print(f"pipeline command: {shlex.join(command)}", file=sys.stderr)
            return 0
        importlib.import_module("dask_jobqueue")  # its import sets SIGINT to a silent sys.exit(); ours come after
        logging.getLogger("distributed").setLevel(logging.WARNING)  # set on import; our lines say what matters
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        return launch(settings, job=job, pipeline_args=pipeline_args)
    except LauncherError as exc:
        print(f"run_slurm: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.args[0] if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"run_slurm: stopped by {signal.Signals(signum).name}; the pipeline is stopped and the worker jobs "
              f"this launcher submitted are cancelled", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
