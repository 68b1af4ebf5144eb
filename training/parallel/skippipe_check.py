"""Every broken SkipPipe constraint of a schedule, in words: written apart from the planner
(training/parallel/skippipe.py) so that tests can trust it."""
from __future__ import annotations

import itertools
from typing import Sequence

from training.parallel.skippipe import Schedule
from training.parallel.skippipe_problem import EPS, SkipProblem, Visit


def validate(schedule: Schedule, problem: SkipProblem) -> list[str]:
    """Every broken constraint, in words; written apart from the planner so tests can trust it."""
    errors = _check_paths(schedule.paths, problem)
    return errors or _check_times(schedule, problem)


def _check_paths(paths: Sequence[Sequence[Visit]], problem: SkipProblem) -> list[str]:
    errors, load = [], [0] * len(problem.stages)
    if len(paths) != problem.n_microbatches:
        errors.append(f"{len(paths)} paths for {problem.n_microbatches} microbatches")
    for m, path in enumerate(paths):
        stages = [s for s, _ in path]
        if len(path) != problem.path_len:
            errors.append(f"mb {m}: {len(path)} visits, want K={problem.path_len}")
        if not stages or stages[0] != 0:
            errors.append(f"mb {m}: first stage is not 0: {stages}")
        if len(set(stages)) != len(stages):
            errors.append(f"mb {m}: a stage is visited twice: {stages}")
        errors += [f"mb {m}: node {n} does not hold stage {s}" for s, n in path
                   if not 0 <= s < len(problem.stages) or n not in problem.stages[s]]
        top, swaps = (stages[0] if stages else 0), 0  # hops are judged from the path's own first stage
        for s in stages[1:]:
            if s > top + 1 + problem.max_jump:
                errors.append(f"mb {m}: hop {top}->{s} skips more than max_jump={problem.max_jump}")
            if s < top and (not problem.reorder or s != top - 1):
                errors.append(f"mb {m}: stage {s} after {top} is not an allowed swap (reorder={problem.reorder})")
            swaps += s < top
            top = max(top, s)
        if swaps > 1:
            errors.append(f"mb {m}: {swaps} swaps, at most one allowed")
        for s in set(stages):
            if 0 <= s < len(load):  # a stage outside the problem is reported above, not counted (nor indexed)
                load[s] += 1
    errors += [f"stage {s} takes {c} microbatches > load cap {problem.load_cap}"
               for s, c in enumerate(load) if s and c > problem.load_cap]
    return errors


def _check_times(schedule: Schedule, problem: SkipProblem) -> list[str]:
    errors, lat = [], problem.latency_s
    at = {(st.kind, st.microbatch, st.stage): st for st in schedule.steps}
    if len(at) != len(schedule.steps) or len(at) != 2 * sum(len(p) for p in schedule.paths):
        errors.append("steps do not match the paths one F and one B per visit")
    for m, path in enumerate(schedule.paths):
        fwd = [at.get(("F", m, s)) for s, _ in path]
        bwd = [at.get(("B", m, s)) for s, _ in path]
        if None in fwd or None in bwd:
            errors.append(f"mb {m}: a step of its path is missing")
            continue
        nodes = [n for _, n in path]
        for i, (f, b) in enumerate(zip(fwd, bwd)):
            if (f.node, b.node) != (nodes[i], nodes[i]):
                errors.append(f"mb {m} visit {i}: steps run on nodes {f.node}/{b.node}, path says {nodes[i]}")
            if max(abs(f.end_s - f.start_s - problem.forward_s), abs(b.end_s - b.start_s - problem.backward_s)) > 1e-6:
                errors.append(f"mb {m} visit {i}: compute windows have the wrong length")
            want = (nodes[i - 1] if i else None, nodes[i + 1] if i + 1 < len(nodes) else None)
            if (f.src, f.dst) != want or (b.dst, b.src) != want:
                errors.append(f"mb {m} visit {i}: message endpoints disagree with the path")
            if i and f.start_s < fwd[i - 1].end_s + lat[nodes[i - 1]][nodes[i]] - 1e-6:
                errors.append(f"mb {m}: F at visit {i} starts before its input can arrive")
            if i + 1 < len(nodes) and b.start_s < bwd[i + 1].end_s + lat[nodes[i + 1]][nodes[i]] - 1e-6:
                errors.append(f"mb {m}: B at visit {i} starts before its gradient can arrive")
        if bwd[-1].start_s < fwd[-1].end_s - 1e-6:
            errors.append(f"mb {m}: backward starts before the loss")
    for node in {st.node for st in schedule.steps}:
        prog = schedule.program(node)
        errors += [f"node {node}: {a.kind}{a.microbatch} and {b.kind}{b.microbatch} overlap"
                   for a, b in zip(prog, prog[1:]) if b.start_s < a.end_s - 1e-6]
        events = sorted([(round(st.start_s, 6), 1) for st in prog if st.kind == "F"]
                        + [(round(st.end_s, 6), -1) for st in prog if st.kind == "B"])
        peak = max(itertools.accumulate(d for _, d in events))
        if peak > problem.memory_cap:
            errors.append(f"node {node}: {peak} microbatches live > memory cap {problem.memory_cap}")
    if abs(schedule.makespan_s - max(st.end_s for st in schedule.steps)) > EPS:
        errors.append("makespan is not the last step's end")
    return errors
