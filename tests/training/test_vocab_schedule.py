"""Where vocab_schedule.py slots the vocabulary passes: orders worked out by hand for 1F1B on 2 ranks and 2
microbatches (F = 1, B = 2, S = 0.25, T = 0.5; the derivation is in the comments), and the rules every order
must keep on larger cases: each pass once per rank, S and T each in microbatch order on every rank (so every
rank starts the collectives of a kind in one order), the last stage's backward after the pass that gives it ∂x."""
from __future__ import annotations

import pytest

from training.parallel.simulator import Costs, schedule_order
from training.parallel.vocab_schedule import VocabCosts, replay, simulate_vocab, vocab_order

UNIT = dict(costs=Costs(f=1.0, b=2.0), vocab=VocabCosts(s=0.25, t=0.5))


def labels(order):
    return [" ".join(a.label for a in ops) for ops in order]


def test_two_barriers_on_two_ranks_by_hand():
    # rank 0: F0 0-1, F1 1-2; rank 1: F0 1-2. S0 on both 2-2.25 (barrier 1 done at 2.25), T0 2.25-2.75 (barrier 2
    # at 2.75); rank 1 B0 2.75-4.75, F1 4.75-5.75, S1 5.75-6; rank 0 B0 4.75-6.75, S1 6.75-7 (barrier 1 at 7);
    # T1 7-7.5 on both (barrier 2 at 7.5); rank 1 B1 7.5-9.5, rank 0 B1 9.5-11.5
    base = schedule_order("1f1b", n_ranks=2, n_microbatches=2)
    order, spans = replay(base, barriers=2, **UNIT)
    assert labels(order) == ["F0 F1 S0 T0 B0 S1 T1 B1", "F0 S0 T0 B0 F1 S1 T1 B1"]
    assert max(s.end for s in spans) == 11.5


def test_one_barrier_on_two_ranks_by_hand():
    # S0 on both 2-2.25; rank 1 B0 2.25-4.25 at once (∂x is known after barrier 1), rank 0 fills its wait with T0
    # 2.25-2.75; rank 1 F1 4.25-5.25, S1 5.25-5.5 (no rank waits for the others at S); it now owes T0 and T1
    # (HELD = 2), so T0 5.5-6; rank 0 B0 4.25-6.25, S1 6.25-6.5 (barrier 1 at 6.5); rank 1 B1 6.5-8.5, T1 8.5-9;
    # rank 0 T1 6.5-7 while it waits, B1 8.5-10.5
    base = schedule_order("1f1b", n_ranks=2, n_microbatches=2)
    order, spans = replay(base, barriers=1, **UNIT)
    assert labels(order) == ["F0 F1 S0 T0 B0 S1 T1 B1", "F0 S0 B0 F1 S1 T0 B1 T1"]
    assert max(s.end for s in spans) == 10.5


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "interleaved1f1b"])
@pytest.mark.parametrize("barriers", [1, 2])
@pytest.mark.parametrize("ranks,micro", [(2, 6), (4, 8), (4, 3)])
def test_every_order_keeps_the_rules(name, barriers, ranks, micro):
    base = schedule_order(name, n_ranks=ranks, n_microbatches=micro)
    order = vocab_order(base, barriers=barriers, **UNIT)
    for r, ops in enumerate(order):
        assert [a for a in ops if a.kind in "FBIW"] == list(base[r])  # the base order is kept as it was
        for kind in "ST":  # each pass once per microbatch, and each kind's collectives are started in microbatch order on every rank
            assert [a.microbatch for a in ops if a.kind == kind] == list(range(micro))
        last = max(a.stage for a in base[-1])
        if any(a.stage == last for a in ops):
            for i in range(micro):
                where = {a.kind + ("L" if a.stage == last else ""): n for n, a in enumerate(ops) if a.microbatch == i}
                assert where["FL"] < where["S"] < where["BL"], (r, i, where)
                if barriers == 2:
                    assert where["S"] < where["T"] < where["BL"]
            for i in range(micro):
                assert [a.kind for a in ops if a.microbatch == i and a.kind in "ST"] == ["S", "T"]


def test_free_vocabulary_passes_cost_nothing_in_gpipe():
    # GPipe's last stage finishes every forward before any backward; with free passes and barriers the makespan
    # is GPipe's own, (m + p - 1)(F + B) = (4 + 2 - 1) * 3
    base = schedule_order("gpipe", n_ranks=2, n_microbatches=4)
    sim = simulate_vocab(base, barriers=2, costs=Costs(f=1.0, b=2.0), vocab=VocabCosts(s=0.0, t=0.0))
    assert sim.makespan == 15.0


def test_bad_barrier_count_is_refused():
    with pytest.raises(ValueError, match="barriers must be 1"):
        replay(schedule_order("1f1b", n_ranks=2, n_microbatches=2), barriers=3, **UNIT)
