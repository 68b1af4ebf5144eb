"""scripts/run_slurm.sh: the job script dask-jobqueue renders, flags and variables, and the launcher's whole life.

No Slurm here: dask-jobqueue renders job scripts without one, and a stand-in sbatch (below) runs the rendered script
on this machine as Slurm would on a node, so the real dask worker command joins the launcher's real scheduler.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster

from pipelines import werp
from tests.pipelines.runs import FNAPI, Outcome, counted, document_rows, run_job

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "scripts" / "run_slurm.sh"
sys.path.append(str(REPO / "scripts"))
import slurm_dask  # noqa: E402  (a script folder, not a package)
from slurm_settings import LauncherError, SlurmSettings, parse_args, resolve  # noqa: E402

_sigint = signal.getsignal(signal.SIGINT)
import dask_jobqueue  # noqa: E402,F401  (imported once here, so that the next line can undo what it does)

signal.signal(signal.SIGINT, _sigint)  # its import makes Ctrl-C a silent sys.exit(); this session's stays as it was

GiB = 2 ** 30


def settings_from(argv: list[str], environ: dict[str, str] | None = None) -> SlurmSettings:
    args, _, _ = parse_args([*argv, "werp"])
    return resolve(args, environ or {})


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def worker_argv(script: str) -> list[str]:
    """The script's last line is the worker command; shlex reads it as bash would (quotes removed)."""
    return shlex.split(script.strip().splitlines()[-1])


def test_job_script_carries_requested_resources_and_worker_command():
    settings = settings_from(["--jobs=3", "--cores=16", "--memory=64G", "--processes=4", "--walltime=2-00:00:00",
                              "--partition=cpu", "--account=proj42", "--qos=high", "--job-extra=--constraint=skylake",
                              "--job-extra=--exclusive", "--job-name=crawl-01", "--python=/shared/venv/bin/python",
                              "--local-directory=/scratch/refinery", "--interface=ib0", "--death-timeout=90"])
    script = slurm_dask.job_script(settings, job="werp")
    assert sbatch_lines(script) == ["-J crawl-01", "-p cpu", "-A proj42", "-n 1", "--cpus-per-task=16",
                                    "--mem=64G", "-t 2-00:00:00", "--qos=high", "--constraint=skylake", "--exclusive"]
    # 64 GiB over 4 processes: 16 GiB and 4 threads each.
    assert worker_argv(script) == [
        "/shared/venv/bin/python", "-m", "distributed.cli.dask_worker", "tcp://<scheduler-address>:<port>",
        "--name", "<worker-name>", "--nthreads", "4", "--memory-limit", "16.00GiB", "--nworkers", "4", "--nanny",
        "--death-timeout", "90", "--local-directory", "/scratch/refinery", "--interface", "ib0"]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_defaults_one_process_per_core_and_a_job_name_per_pipeline():
    script = slurm_dask.job_script(settings_from([]), job="tokenize")
    assert sbatch_lines(script) == ["-J refinery-tokenize", "-n 1", "--cpus-per-task=8", "--mem=32G", "-t 01:00:00"]
    argv = worker_argv(script)
    assert argv[argv.index("--nthreads") + 1] == "1" and argv[argv.index("--nworkers") + 1] == "8"
    assert argv[argv.index("--memory-limit") + 1] == "4.00GiB"  # 32 GiB / 8


@pytest.mark.parametrize(("memory", "expected_bytes", "expected_mem"), [
    ("64G", 64 * GiB, "--mem=64G"),  # Slurm's G is GiB
    ("64GB", 64_000_000_000, "--mem=60G"),  # Dask's GB is 1e9: 59.6 GiB, rounded up
    ("1536M", 1536 * 2 ** 20, "--mem=2G"),
    ("500 GiB", 500 * GiB, "--mem=500G"),
])
def test_memory_reads_slurm_and_dask_sizes(memory: str, expected_bytes: int, expected_mem: str):
    settings = settings_from([f"--memory={memory}", "--cores=1"])
    assert settings.memory == expected_bytes
    assert expected_mem in sbatch_lines(slurm_dask.job_script(settings, job="werp"))


def test_printed_script_is_the_one_the_cluster_submits():
    """--print-job-script renders without a scheduler; a real SLURMCluster must submit the same text."""
    from dask_jobqueue import SLURMCluster

    settings = settings_from(["--cores=4", "--memory=8G", "--partition=cpu", "--prologue=module load python",
                              "--interface=lo", "--dashboard-port=0"])
    printed = slurm_dask.job_script(settings, job="swallowmath")
    with SLURMCluster(**slurm_dask.cluster_kwargs(settings, job="swallowmath")) as cluster:
        submitted = cluster.job_script()
        address = cluster.scheduler_address
    expected = printed.replace("tcp://<scheduler-address>:<port>", address).replace("<worker-name>", "dummy-name")
    assert submitted == expected


def test_flag_beats_variable_beats_default():
    environ = {"REFINERY_SLURM_CORES": "4", "REFINERY_SLURM_PARTITION": "env-part", "REFINERY_SLURM_WALLTIME": "30"}
    assert settings_from([], environ).cores == 4  # variable over default (8)
    assert settings_from(["--cores=2"], environ).cores == 2  # flag over variable
    assert settings_from(["--cores=2"], environ).partition == "env-part"
    assert settings_from([], environ).walltime == "30" and settings_from([]).walltime == "01:00:00"
    assert settings_from([], {"REFINERY_SLURM_CORES": ""}).cores == 8  # an empty variable is unset


def test_repeatable_settings_variable_holds_several_and_flags_replace_it():
    environ = {"REFINERY_SLURM_JOB_EXTRA": "--constraint=skylake --exclusive",
               "REFINERY_SLURM_ENV": "OMP_NUM_THREADS=1 'GREETING=hello world'",
               "REFINERY_SLURM_PROLOGUE": "module load python/3.11; source /shared/venv/bin/activate"}
    from_env = settings_from([], environ)
    assert from_env.job_extra == ("--constraint=skylake", "--exclusive")
    assert from_env.prologue == ("module load python/3.11; source /shared/venv/bin/activate",)
    assert from_env.env == (("OMP_NUM_THREADS", "1"), ("GREETING", "hello world"))
    from_flags = settings_from(["--job-extra=--gres=gpu:1", "--env=OMP_NUM_THREADS=4"], environ)
    assert (from_flags.job_extra, from_flags.env) == (("--gres=gpu:1",), (("OMP_NUM_THREADS", "4"),))
    lines = slurm_dask.job_script(from_env, job="werp").splitlines()
    assert lines.index("module load python/3.11; source /shared/venv/bin/activate") < lines.index(
        "export GREETING='hello world'") < len(lines) - 1  # prologue, then exports, then the worker


def test_paths_with_spaces_are_quoted_and_variables_stay_live_on_the_node():
    settings = settings_from(["--python=/opt/my env/bin/python", "--local-directory=/scratch/$USER/spill dir"])
    script = slurm_dask.job_script(settings, job="werp")
    command = script.strip().splitlines()[-1]
    assert command.startswith('"/opt/my env/bin/python" -m distributed.cli.dask_worker ')
    assert '--local-directory "/scratch/$USER/spill dir"' in command  # double quotes: $USER expands on the node
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["--cores=0"], {}, "--cores '0' must be a whole number, 1 or more"),
    (["--jobs=two"], {}, "--jobs 'two' must be a whole number, 1 or more"),
    ([], {"REFINERY_SLURM_JOBS": "two"}, "REFINERY_SLURM_JOBS 'two' must be a whole number"),
    (["--memory=lots"], {}, "--memory 'lots' is not a memory size of 1 MiB or more: write e.g. 64G"),
    (["--memory=512"], {}, "--memory '512' is not a memory size of 1 MiB or more"),
    (["--walltime=2h"], {}, "--walltime '2h' is not a Slurm time: use HH:MM:SS"),
    (["--partition=cpu gpu"], {}, "--partition 'cpu gpu' must be one word without spaces or quotes"),
    (["--job-extra=exclusive"], {}, "--job-extra 'exclusive' must be one sbatch option written as --name=value"),
    ([], {"REFINERY_SLURM_JOB_EXTRA": "--exclusive -C"}, None),  # two options, both fine
    (["--env=NOVALUE"], {}, "--env 'NOVALUE' must be NAME=VALUE"),
    (["--env=PYTHONHASHSEED=7"], {}, "--env 'PYTHONHASHSEED=7' sets what Dask's nanny sets"),
    (["--dashboard-port=99999"], {}, "--dashboard-port '99999' is not a TCP port"),
    (["--address=scheduler"], {}, "--address 'scheduler' is not a Dask scheduler address: write tcp://HOST:PORT"),
    (["--cores=8", "--processes=3"], {}, "--cores (8) is not a multiple of --processes (3); use a divisor of 8"),
    (["--jobs=2", "--cores=4", "--min-workers=9"], {}, "--min-workers (9) > --jobs x --processes (2 x 4)"),
])
def test_bad_values_name_the_flag_or_variable_and_the_fix(argv: list[str], environ: dict[str, str],
                                                          message: str | None):
    if message is None:
        assert settings_from(argv, environ).job_extra == ("--exclusive", "-C")
        return
    with pytest.raises(LauncherError) as err:
        settings_from(argv, environ)
    assert str(err.value).startswith(message)


def run_launcher(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def test_print_job_script_passes_pipeline_flags_unchanged(tmp_path: Path):
    """Spaces, quotes and = inside values survive bash "$@", argparse and the command line shown."""
    flags = ["--input=/data/my crawl/*.warc.gz", """--output=/out/it's "here" """, "--config", "fine web",
             "key=value with spaces"]
    done = run_launcher(["--print-job-script", "--cores=2", "werp", *flags], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#!/usr/bin/env bash\n") and "#SBATCH --cpus-per-task=2" in done.stdout
    shown = [line for line in done.stderr.splitlines() if line.startswith("pipeline command: ")]
    assert shlex.split(shown[0].removeprefix("pipeline command: "))[2:] == [
        "pipelines.werp", "--runner=DaskRunner", "--dask_client_address=<scheduler-address>", *flags]
    assert list(tmp_path.iterdir()) == []  # nothing submitted, nothing written


def test_launcher_refuses_bad_values_in_one_line(tmp_path: Path):
    done = run_launcher(["--walltime=forever", "werp"], cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "run_slurm: error: --walltime 'forever' is not a Slurm time: use HH:MM:SS, D-HH:MM:SS " \
                          "or minutes\n"
    done = run_launcher(["--print-job-script", "werp", "--runner=DirectRunner"], cwd=tmp_path)
    assert done.returncode == 2 and "pipeline flag '--runner=DirectRunner' is set by the launcher" in done.stderr
    done = run_launcher(["--interface=nosuchnic0", "werp"], cwd=tmp_path)
    assert done.returncode == 2 and "run_slurm: error: 'nosuchnic0' is not a valid network interface. Valid network " \
                                    "interfaces are: ['lo'" in done.stderr
    assert "pass --scheduler-interface with one of those" in done.stderr and "Traceback" not in done.stderr
    done = run_launcher(["--cores=2", "notajob"], cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'notajob'" in done.stderr


FAKE_SBATCH = """\
#!/usr/bin/env bash
# Stands in for Slurm's sbatch: keeps the job script and, with FAKE_SLURM_RUN=1, runs it here in its own session;
# FAKE_SLURM_REFUSE=reason refuses it as sbatch does (message on stderr, exit 1).
id=$$
if [[ -n ${FAKE_SLURM_REFUSE:-} ]]; then echo "sbatch: error: $FAKE_SLURM_REFUSE" >&2; exit 1; fi
cp "$1" "$FAKE_SLURM/job-$id.sh"
if [[ ${FAKE_SLURM_RUN:-} == 1 ]]; then
  setsid bash "$FAKE_SLURM/job-$id.sh" >"$FAKE_SLURM/job-$id.log" 2>&1 </dev/null &
  echo $! >"$FAKE_SLURM/job-$id.pid"
fi
echo "Submitted batch job $id"
"""
FAKE_SCANCEL = """\
#!/usr/bin/env bash
# Stands in for Slurm's scancel: records the ids and ends each job's process group.
for id in "$@"; do
  echo "$id" >>"$FAKE_SLURM/cancelled"
  if [[ -f $FAKE_SLURM/job-$id.pid ]]; then kill -TERM -- "-$(cat "$FAKE_SLURM/job-$id.pid")" 2>/dev/null || true; fi
done
"""


@pytest.fixture
def fake_slurm(tmp_path: Path):
    """PATH with sbatch/scancel stand-ins; every job they started is ended when the test ends."""
    folder = tmp_path / "slurm"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    yield folder, {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM": str(folder)}
    for pid_file in folder.glob("job-*.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def submitted_ids(folder: Path) -> set[str]:
    return {p.stem.removeprefix("job-") for p in folder.glob("job-*.sh")}


def cancelled_ids(folder: Path) -> list[str]:
    path = folder / "cancelled"
    return path.read_text().split() if path.exists() else []


def wait_gone(pid: int, *, limit_s: float = 60) -> bool:
    """True once process group `pid` has no members (bounded; the test fails if it never empties)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def werp_reference(tmp_path_factory) -> Outcome:
    """werp's built-in sample on the local runner: what any cluster run must reproduce."""
    return run_job(werp.run, [], runner=FNAPI, out=tmp_path_factory.mktemp("reference") / "out")


def assert_same_werp_output(out: Path, reference: Outcome) -> None:
    assert reference.rows, "a comparison of nothing proves nothing"
    assert document_rows(out) == reference.rows
    assert counted(json.loads((out / "stats.json").read_text(encoding="utf-8"))["stages"]) == reference.stages


@pytest.mark.slow
def test_launcher_runs_werp_on_its_slurm_jobs_and_cancels_them_after(tmp_path: Path, fake_slurm,
                                                                     werp_reference: Outcome):
    """The whole path: two worker jobs from the rendered script join, werp runs on them through the DaskRunner with
    the user's flags, gives the local runner's rows and counts, and both jobs are cancelled once it succeeded."""
    folder, env = fake_slurm
    out = tmp_path / "out dir"
    done = run_launcher(["--jobs=2", "--cores=1", "--memory=2G", "--interface=lo", "--dashboard-port=0",
                         "--wait-timeout=240", "werp", f"--output={out}", "--dask_npartitions=2"],
                        env={**env, "FAKE_SLURM_RUN": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_werp_output(out, werp_reference)
    ids = submitted_ids(folder)
    assert len(ids) == 2 and sorted(cancelled_ids(folder)) == sorted(ids)
    assert all(wait_gone(int((folder / f"job-{i}.pid").read_text())) for i in ids)


@pytest.mark.slow
def test_rendered_job_script_starts_workers_that_join_with_the_requested_resources(tmp_path: Path):
    """Run the submitted script as a Slurm node would: its workers join with the threads, memory, spill folder and
    environment the flags asked for ($VARS in --local-directory expand on the node) and share one hash seed, which
    the pipeline driver gets too."""
    from dask_jobqueue import SLURMCluster

    settings = settings_from(["--jobs=1", "--cores=2", "--processes=2", "--memory=1G", "--wait-timeout=120",
                              "--interface=lo", "--dashboard-port=0",
                              f"--local-directory={tmp_path}/spill dir/$NODE_TAG", "--env=NODE_TAG=node-a"])
    with SLURMCluster(**slurm_dask.cluster_kwargs(settings, job="werp")) as cluster, Client(cluster) as client:
        script = tmp_path / "job.sh"
        script.write_text(cluster.job_script())
        job = subprocess.Popen(["bash", str(script)], cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seed = slurm_dask.ready_workers(client, settings, job="werp", job_ids=["1"])
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            assert sorted((w["nthreads"], w["memory_limit"]) for w in workers) == [(1, GiB // 2)] * 2
            assert all(w["local_directory"].startswith(f"{tmp_path}/spill dir/node-a/") for w in workers)
            assert sorted(client.run(os.getenv, "NODE_TAG").values()) == ["node-a", "node-a"]
            assert seed is not None and set(client.run(os.getenv, "PYTHONHASHSEED").values()) == {seed}
            driver = slurm_dask.pipeline_env(settings, hash_seed=seed)
            assert (driver["PYTHONHASHSEED"], driver["NODE_TAG"]) == (seed, "node-a")
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(timeout=60)


@pytest.mark.slow
def test_launcher_cancels_the_jobs_when_the_pipeline_fails_and_passes_its_exit_code(tmp_path: Path, fake_slurm):
    """werp gets the user's flags as typed (its refusal quotes the --input value back, spaces and quotes intact), its
    exit code is the launcher's, and the job is cancelled."""
    folder, env = fake_slurm
    missing = str(tmp_path / "my crawl" / "it's \"here\".warc.gz")
    done = run_launcher(["--jobs=1", "--cores=1", "--memory=1G", "--interface=lo", "--dashboard-port=0",
                         "--wait-timeout=240", "werp", f"--input={missing}", f"--output={tmp_path}/out"],
                        env={**env, "FAKE_SLURM_RUN": "1"}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"werp: error: --input {missing!r} matched no files" in done.stderr
    assert "1 Dask workers joined" in done.stderr
    ids = submitted_ids(folder)
    assert len(ids) == 1 and cancelled_ids(folder) == list(ids)
    for job_id in ids:
        script = (folder / f"job-{job_id}.sh").read_text()
        assert "--cpus-per-task=1" in sbatch_lines(script)
        assert wait_gone(int((folder / f"job-{job_id}.pid").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_while_waiting_cancels_every_job(tmp_path: Path, fake_slurm, sig: int, code: int):
    """Ctrl-C (or scancel of the launcher itself) before the workers came: the queued jobs must not stay queued."""
    folder, env = fake_slurm
    launcher = subprocess.Popen([str(LAUNCHER), "--jobs=3", "--cores=1", "--interface=lo", "--dashboard-port=0",
                                 "--wait-timeout=120", "werp"], cwd=tmp_path, env={**os.environ, **env},
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    for line in launcher.stderr:  # the launcher says when it starts waiting; then the jobs are in the queue
        lines.append(line)
        if "0 of 3 Dask workers joined" in line:
            break
    launcher.send_signal(sig)
    rest = launcher.stderr.read()
    assert launcher.wait(timeout=120) == code, "".join(lines) + rest
    assert f"stopped by {signal.Signals(sig).name}; the pipeline is stopped and the worker jobs this launcher " \
           "submitted are cancelled" in rest
    assert len(submitted_ids(folder)) == 3 and sorted(cancelled_ids(folder)) == sorted(submitted_ids(folder))


@pytest.mark.slow
def test_workers_that_never_come_give_a_clear_error_and_are_cancelled(tmp_path: Path, fake_slurm):
    folder, env = fake_slurm
    done = run_launcher(["--jobs=2", "--cores=2", "--processes=1", "--interface=lo", "--dashboard-port=0",
                         "--wait-timeout=1", "werp"], env=env, cwd=tmp_path)
    ids = sorted(submitted_ids(folder), key=int)
    assert done.returncode == 2, done.stderr
    assert (f"run_slurm: error: only 0 of 2 Dask workers joined within 1 s; Slurm jobs {' '.join(ids)} may still be "
            f"queued (squeue -j {','.join(ids)})") in done.stderr
    assert sorted(cancelled_ids(folder)) == sorted(ids)


@pytest.mark.slow
def test_sbatch_refusal_is_the_error_and_nothing_is_left_queued(tmp_path: Path, fake_slurm):
    """dask-jobqueue submits in the background and only logs a refusal; the launcher must say it and stop."""
    folder, env = fake_slurm
    done = run_launcher(["--jobs=2", "--partition=nope", "--interface=lo", "--dashboard-port=0", "--wait-timeout=60",
                         "werp"], env={**env, "FAKE_SLURM_REFUSE": "invalid partition specified: nope"}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith("run_slurm: error: sbatch refused the worker job: sbatch: error: invalid partition "
                                "specified: nope; check --partition, --account, --qos and --job-extra "
                                "(--print-job-script shows the script)\n")
    assert "Traceback" not in done.stderr and submitted_ids(folder) == set() and cancelled_ids(folder) == []


@pytest.mark.slow
def test_existing_address_runs_the_pipeline_there_and_leaves_the_cluster_running(tmp_path: Path, fake_slurm,
                                                                                 werp_reference: Outcome):
    """--address: no jobs submitted; werp runs on that LocalCluster with the user's flags, gives the local runner's
    rows and counts, and the cluster is still there afterwards."""
    folder, env = fake_slurm
    with dask.config.set({"distributed.worker.daemon": False}):  # our DoFns start child processes
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        out = tmp_path / "out"
        done = run_launcher([f"--address={cluster.scheduler_address}", "werp", f"--output={out}",
                             "--dask_npartitions=2"], env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert_same_werp_output(out, werp_reference)
        with Client(cluster) as client:
            assert len(client.nthreads()) == 2
    finally:
        cluster.close()
    assert submitted_ids(folder) == set() and cancelled_ids(folder) == []


def test_every_setting_is_a_flag_with_help_and_a_variable():
    done = run_launcher(["--help"])
    assert done.returncode == 0
    for name in ("--jobs", "--cores", "--memory", "--walltime", "--partition", "--account", "--qos", "--job-extra",
                 "--python", "--prologue", "--env", "--local-directory", "--interface", "--wait-timeout",
                 "--print-job-script", "REFINERY_SLURM_WALLTIME", "REFINERY_SLURM_WAIT_TIMEOUT"):
        assert name in done.stdout
