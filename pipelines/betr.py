"""Train the fastText quality classifier: BETR labels from benchmark similarity, or DCLM's positives and negatives.

python -m pipelines.betr --benchmarks=arc.jsonl,sciq.jsonl --benchmark_fields=question,answer \\
    --pool='output/werp/documents/*.parquet' --sample=100000 --output=models/betr.bin
python -m pipelines.betr --positives=hq.jsonl --negatives='cc/*.parquet' --output=models/dclm.bin fasttext.epoch=20

Settings come as every job's do: --config (configs/betr/), then key=value, then the flags below, each a shortcut
for a key. One process, not a Beam job. The model and <output>.report.json (with the config used) are local files.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

from core.config import from_mapping
from core.job_config import load_job_config
from pipelines.betr_steps import (
    build_parser, check_inputs, label_betr, label_dclm, log, recipe_flags, train_and_report,
)
from pipelines.jobs import JobError, job_main, split_overrides
from pipelines.options import wants_help
from pipelines.staging import staged_files
from transforms.quality import betr
from transforms.quality.betr_config import ClassifierTraining

CHANCE_MARGIN = 0.6  # on balanced classes 0.5 is a coin toss; below 0.6 the model has learned little
def run(argv: list[str] | None = None) -> dict:
    """Load the config, label, train, write the model and its report; returns the report."""
    overrides, argv = split_overrides(argv)
    args = build_parser(__doc__).parse_args(argv)
    flags = recipe_flags(args)
    loaded = load_job_config(args.config, folder="betr", what="classifier config", overrides=overrides, flags=flags,
                             build=lambda data, where: from_mapping(ClassifierTraining, data, where=where))
    cfg = loaded.config
    if cfg.mode is None:
        raise JobError("pass either --benchmarks and --pool (BETR) or --positives and --negatives (DCLM)")
    check_inputs(cfg, args.output)
    started = time.monotonic()
    with staged_files(args.output, f"{args.output}.report.json") as (model_path, report_path):
        try:
            texts, labels, inputs = label_betr(cfg) if cfg.mode == "betr" else label_dclm(cfg)
            result = train_and_report(texts, labels, cfg=cfg, model_path=model_path)
        except (ImportError, betr.TrainingError) as exc:  # the quality extra is missing; fastText diverged
            raise JobError(str(exc)) from None
        report = {"mode": cfg.mode, "model": args.output, **result, "inputs": inputs,
                  "fasttext": dataclasses.asdict(cfg.fasttext), "config": loaded.mapping,
                  "config_source": loaded.where, "wall_time_s": round(time.monotonic() - started, 2)}
        with open(report_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    held = report["held_out_metrics"]
    accuracy = "n/a" if held["accuracy"] is None else f"{held['accuracy']:.3f}"
    print(f"{cfg.mode}: {result['positive']} positive / {result['negative']} negative labelled, trained on "
          f"{result['trained_on']}, held-out accuracy {accuracy} on {held['n']}\nmodel: {args.output}  report: "
          f"{args.output}.report.json")
    if cfg.balance and held["accuracy"] is not None and held["accuracy"] < CHANCE_MARGIN:
        log.warning("held-out accuracy %.3f is no better than chance: with few examples (%d here) fastText needs "
                    "more passes: try --epoch=25 --lr=0.5, or a larger --sample.", held["accuracy"],
                    result["trained_on"])
    return report


def main(argv: list[str]) -> int:
    """job_main's logging and one-line errors; --help is this parser's (job_main's lists Beam runner flags)."""
    if wants_help(argv):
        build_parser(__doc__).print_help(sys.stdout)
        return 0
    return job_main(argv, name="betr", doc=__doc__, option_classes=(), run=run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
