"""The --runner names we treat specially, in one place for the jobs (pipelines/runners.py) and the transforms that
adapt to where they run (the paragraph dedup's n-gram exchange). Any other name goes to Beam unchanged."""
from __future__ import annotations

DIRECT_RUNNERS = frozenset({None, "DirectRunner", "direct"})  # the default: Beam's local engine on every core
LOCAL_RUNNERS = DIRECT_RUNNERS | {"FnApiRunner"}  # Beam's local engine; FnApiRunner as is, in this process
DASK_RUNNERS = frozenset({"DaskRunner", "dask"})  # our DaskRunner (pipelines/dask_runner.py)
IN_MEMORY_SHUFFLE = LOCAL_RUNNERS  # runners that hold a shuffle in memory (the local engine)
