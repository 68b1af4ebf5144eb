"""Refinery works installed: the wheel carries every data file, runs from a fresh venv with no checkout in sight, the
worker image copies every package its modules import, and the GPU constraints agree with the package's ranges."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.pipelines.runs import counted

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = tuple(p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
DOCKERFILE = (REPO / "scripts" / "Dockerfile").read_text(encoding="utf-8")
VOLATILE_STATS = ("wall_time_s", "inputs", "input_files")  # differ between two runs of one job on the same input


def shipped_files() -> list[str]:
    """Files a checkout holds under the package folders (tracked, or new and not ignored), as the wheel should."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *PACKAGES], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.split()
    return sorted(f for f in out if (REPO / f).is_file() and "__pycache__" not in f)


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of this checkout (building in place would leave build/ and egg-info in the repo)."""
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("refinery-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv holding only the wheel, that borrows the dev venv's third-party packages but not its refinery.

    Installing every dependency from the registry takes minutes, so the new venv gets one .pth line naming the dev
    venv's site-packages. A directory named in a .pth file is appended to sys.path without its own .pth files being
    run, so the dev venv's `__editable__.refinery-*.pth` (whose finder maps pipelines/transforms/training/configs to
    this checkout) never runs: refinery can only come from the wheel, which sits earlier on sys.path."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_refinery_test_dev_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def run_in(cwd: Path, python: Path | str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONNOUSERSITE": "1"}
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def werp_result(out: Path) -> tuple[dict, list[str]]:
    """stats.json less its per-run fields, and the ids of the documents written."""
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    ids = sorted(i for f in sorted((out / "documents").glob("*.parquet")) for i in pq.read_table(f)["id"].to_pylist())
    stats["stages"] = counted(stats["stages"])  # worker seconds differ from run to run
    return {k: v for k, v in stats.items() if k not in VOLATILE_STATS}, ids


@pytest.mark.slow
def test_the_installed_wheel_runs_the_jobs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in shipped_files() if f not in in_wheel]
    assert not missing, f"in the checkout but not in the wheel (pyproject package-data or an __init__.py): {missing}"

    python, site = fresh_venv(tmp_path, wheel)
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = run_in(away, python, "-c", "import json, sys, pipelines, transforms, training, configs; print(json.dumps("
                   "{'files': [m.__file__ for m in (pipelines, transforms, training, configs)], 'path': sys.path}))")
    assert where.returncode == 0, where.stderr
    found = json.loads(where.stdout)
    assert all(Path(f).is_relative_to(site) for f in found["files"]), found["files"]
    borrowed = Path(sysconfig.get_paths()["purelib"])  # the dev venv's third-party packages, inside the repo
    in_repo = [p for p in found["path"] if p and Path(p).is_relative_to(REPO) and Path(p) != borrowed]
    assert not in_repo, f"the fresh venv can see the checkout: {in_repo}"

    installed = run_in(away, python, "-m", "pipelines.werp", "--runner=FnApiRunner", f"--output={tmp_path / 'a'}")
    assert installed.returncode == 0, installed.stderr[-3000:]
    checkout = run_in(REPO, sys.executable, "-m", "pipelines.werp", "--runner=FnApiRunner",
                      f"--output={tmp_path / 'b'}")
    assert checkout.returncode == 0, checkout.stderr[-3000:]
    (stats, ids), (want_stats, want_ids) = werp_result(tmp_path / "a"), werp_result(tmp_path / "b")
    assert ids and ids == want_ids and stats == want_stats  # recipes, URL lists and sample read from the install
    inputs = json.loads((tmp_path / "a" / "stats.json").read_text(encoding="utf-8"))["inputs"]
    assert inputs == [str(site / "pipelines" / "data" / "sample.warc.gz")]

    usage = run_in(away, python, "-m", "pipelines.tokenize", "--help")
    assert usage.returncode == 0 and "--config" in usage.stdout, usage.stderr[-3000:]
    for job, sample in (("tokenize", "sample_text.jsonl"), ("swallowmath", "sample_math.jsonl"),
                        ("swallowcode", "sample_code.jsonl")):  # each job's first run is one command, installed too
        first = run_in(away, python, "-m", f"pipelines.{job}", "--runner=FnApiRunner", f"--output={tmp_path / job}")
        assert first.returncode == 0, first.stderr[-3000:]
        files = json.loads((tmp_path / job / "stats.json").read_text(encoding="utf-8"))["input_files"]
        assert [f["path"] for f in files] == [str(site / "pipelines" / "data" / sample)]
        assert (tmp_path / job / "report.html").is_file()


def dockerfile_copies() -> set[str]:
    """The repository paths the worker image's COPY lines bring in (sources only, the destination dropped)."""
    copied = set()
    for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE, flags=re.M):
        copied.update(p.rstrip("/") for p in line.split()[:-1] if not p.startswith("--"))
    return copied


def module_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def absolute_imports(path: Path) -> set[str]:
    """Every module a file imports (lazy imports inside functions too); relative ones made absolute."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names.update([module, *(f"{module}.{a.name}" for a in node.names)] if node.module or node.level else [])
    return names


def is_module(name: str) -> bool:
    """A dotted name is a module file or a package folder of this checkout."""
    stem = REPO.joinpath(*name.split("."))
    return stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file()


def test_worker_image_copies_every_package_that_the_modules_import():
    copied = dockerfile_copies()
    assert set(PACKAGES) <= copied, f"Dockerfile does not COPY {sorted(set(PACKAGES) - copied)}"
    first_party = {m for p in module_files() for m in absolute_imports(p)
                   if m.split(".")[0] in PACKAGES or (REPO / m.split(".")[0]).is_dir()}
    outside = sorted(m for m in first_party if m.split(".")[0] not in copied)
    assert not outside, f"modules of the package import repository code the image lacks: {outside}"
    # `import a.b` names a module; `from a.b import c` a module a.b whose c is a submodule or a name in it
    unresolved = sorted(m for m in first_party if not is_module(m) and not is_module(m.rpartition(".")[0]))
    assert not unresolved, f"imports that name no module of the checkout: {unresolved}"


def requirement_closure(names: list[str]) -> set[str]:
    """Distributions that installing these requirements brings in, from the installed packages' metadata."""
    seen, stack, out = set(), [Requirement(n) for n in names], set()
    while stack:
        req = stack.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        out.add(key[0])
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:  # not installed here (vllm): it counts, its own needs are not walked
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                stack.append(sub)
    return out


def image_extras() -> tuple[list[str], list[str]]:
    """The extras the image installs by default, and those of the GPU build the Dockerfile documents."""
    default = re.search(r"^ARG EXTRAS=(\S+)$", DOCKERFILE, flags=re.M)
    gpu = re.search(r"--build-arg EXTRAS=(\S+)", DOCKERFILE)
    assert default and gpu, "scripts/Dockerfile must set ARG EXTRAS=... and document the GPU --build-arg EXTRAS=..."
    return default.group(1).split(","), gpu.group(1).split(",")


def test_image_extras_cover_every_third_party_import():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    default, gpu = image_extras()
    assert set(default) | set(gpu) <= set(extras), f"unknown extras in the Dockerfile: {set(default) | set(gpu)}"
    top = {m.split(".")[0] for p in module_files() for m in absolute_imports(p)}
    third_party = sorted(top - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"})
    dists = metadata.packages_distributions()
    needed = {name: {canonicalize_name(d) for d in dists.get(name, [name])} for name in third_party}

    def uncovered(chosen: list[str]) -> list[str]:
        have = requirement_closure([*project["dependencies"], *(r for e in chosen for r in extras[e])])
        return sorted(name for name, ds in needed.items() if not ds & have)

    for name in ("fasttext", "transformers", "torch", "tokenizers"):  # the optional imports the workers need
        assert name in needed, f"expected {name} among the package's imports; update this test"
    assert uncovered(gpu) == [], "the GPU image lacks these imports' packages"
    gpu_only = requirement_closure(extras["gpu"])
    lacking = [name for name in uncovered(default) if not needed[name] & gpu_only]
    assert not lacking, f"the default image lacks these imports' packages, and they are not GPU-only: {lacking}"


def pins(path: Path) -> dict[str, Requirement]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln]
    return {canonicalize_name(r.name): r for r in reqs if r.marker is None or r.marker.evaluate()}


def test_gpu_constraints_keep_the_dev_pins_and_fit_the_package_ranges():
    gpu, dev = pins(REPO / "constraints-gpu.txt"), pins(REPO / "constraints.txt")
    assert str(gpu["torch"].specifier) == "==2.13.0" and str(gpu["vllm"].specifier) == "==0.32.0"
    changed = {n for n in dev if str(dev[n].specifier) != str(gpu.get(n, dev[n]).specifier)}
    assert changed == {"numpy", "transformers"}, "only what vLLM 0.32 needs may differ from constraints.txt"
    assert set(dev) <= set(gpu)
    project = PYPROJECT["project"]
    ranges = [*project["dependencies"], *(r for e in ("gpu", "train", "quality", "dask", "dev")
                                           for r in project["optional-dependencies"][e])]
    for text in ranges:
        req = Requirement(text)
        pinned = gpu.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} has no pin in constraints-gpu.txt"
        version = next(iter(pinned.specifier)).version
        assert req.specifier.contains(version, prereleases=True), f"{req} excludes the GPU pin {version}"


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_part_on_the_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    install = re.search(r"install \(not run in a dry run\): (.+)", done.stdout).group(1)
    assert "-c constraints-gpu.txt" in install and "python3.11 -m venv" in install
    extras = re.search(r'-e "?\.\[([a-z,]+)\]', install).group(1).split(",")
    assert "gpu" in extras and set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])
    report = json.loads((tmp_path / "gpu_check.json").read_text(encoding="utf-8"))
    assert not [p for p in ("vllm", "swallowcode", "train", "streambp") if "error" in report[p]], report

    from transformers import AutoConfig, AutoTokenizer  # the model folder is a Hugging Face Llama folder
    tok = AutoTokenizer.from_pretrained(report["model"]["folder"], local_files_only=True)
    config = AutoConfig.from_pretrained(report["model"]["folder"], local_files_only=True)
    assert config.architectures == ["LlamaForCausalLM"] and config.vocab_size == len(tok) == report["model"]["vocab"]
    assert "### assistant" in tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                                      tokenize=False)

    vllm = report["vllm"]  # the transformers backend stood in; what vLLM would get is what vllm_api builds
    assert sum(vllm["finish_reasons"].values()) == vllm["prompts"] == 4
    assert vllm["vllm_llm_args"]["load_format"] == "dummy" and vllm["vllm_llm_args"]["dtype"] == "bfloat16"
    assert vllm["vllm_sampling_args"]["n"] == 1 and vllm["vllm_chat_args"]["use_tqdm"] is False
    snippets = sorted((tmp_path / "swallowcode" / "code").glob("*.py"))
    compiled = [f for f in snippets if compile(f.read_text(encoding="utf-8"), str(f), "exec")]
    code = report["swallowcode"]  # every snippet compiles, so each reaches the rewrite and is generated once
    assert len(compiled) == code["inputs"] == code["generated"] == code["stages"]["sgcr_llm"]["docs_in"] == 4
    train = report["train"]
    assert train["steps"] == 3 and train["step_s"] > 0 and train["mfu"] is None  # no MFU without a GPU peak
    streambp = report["streambp"]
    assert streambp["exact"] and {r["dtype"] for r in streambp["exactness"]} == {"float64", "float32"}
