"""What `python -m pipelines.betr` trains from and how (configs/betr/*.yaml): BETR's benchmark-ranked labels or DCLM's
given sets, the held-out split, and fastText's settings."""
from __future__ import annotations

from dataclasses import dataclass

from transforms.quality.betr import FastTextParams


@dataclass(frozen=True, kw_only=True, slots=True)
class BetrLabels:
    """BETR mode (Mizrahi et al. 2025): pool documents labelled by their best rank against benchmark examples."""

    benchmarks: tuple[str, ...] = ()  # JSONL files or globs; each file is one benchmark, each record one example
    benchmark_fields: tuple[str, ...] = ("text",)  # joined by newlines into an example (list values by spaces)
    examples_per_benchmark: int | None = None  # sampled per file (seeded); BETR uses an equal count; None = all
    pool: tuple[str, ...] = ()  # documents to label: Parquet shards (werp output) or JSONL, globs
    sample: int = 100_000  # pool documents sampled uniformly (a seeded reservoir); BETR sampled 10M
    positive_fraction: float = 0.1  # share of the sample, best ranks first, labelled positive (BETR's)
    max_rank: int | None = None  # rank only each example's nearest N documents (faster); None = rank all
    batch_size: int = 64  # embedding batch size

    def __post_init__(self) -> None:
        for name in ("examples_per_benchmark", "sample", "max_rank", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")
        if not 0.0 < self.positive_fraction < 1.0:
            raise ValueError(f"positive_fraction ({self.positive_fraction}) must be in (0, 1); BETR uses 0.1")


@dataclass(frozen=True, kw_only=True, slots=True)
class DclmLabels:
    """DCLM mode (Li et al. 2024): given high- and low-quality sets, JSONL or Parquet globs."""

    positives: tuple[str, ...] = ()  # high-quality documents: JSONL or Parquet globs
    negatives: tuple[str, ...] = ()  # low-quality documents (e.g. raw crawl): JSONL or Parquet globs


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassifierTraining:
    """One run of pipelines.betr: which labels, which texts, the held-out split, fastText."""

    name: str = "custom"
    betr: BetrLabels = BetrLabels()
    dclm: DclmLabels = DclmLabels()
    text_field: str = "text"  # text field of pool, positive and negative records
    held_out: float = 0.1  # share of labelled documents held out (stratified, seeded) to measure accuracy
    balance: bool = True  # downsample the majority class to the minority's size, as BETR does
    seed: int = 0  # seed of sampling, balancing and the split (the --seed flag sets fasttext.seed too)
    fasttext: FastTextParams = FastTextParams()  # defaults: DCLM's OH-2.5 + ELI5 classifier; thread 1 reproduces

    def __post_init__(self) -> None:
        if not 0.0 <= self.held_out < 1.0:
            raise ValueError(f"held_out ({self.held_out}) must be in [0, 1)")

    @property
    def mode(self) -> str | None:
        """"betr" or "dclm" by which inputs are set; None when neither or both are (the job says what to pass)."""
        betr, dclm = bool(self.betr.benchmarks or self.betr.pool), bool(self.dclm.positives or self.dclm.negatives)
        return None if betr == dclm else "betr" if betr else "dclm"
