"""Steps share one split until an editor changes the text, and the chain stops at the first drop."""
from __future__ import annotations

from transforms.filters.base import apply_steps
from transforms.filters.registry import registry
from transforms.recipe import parse_steps
from transforms.text import TextView

GOOD = "\n".join(
    f"Line {i}: the people of the town said that they have to go to the market with the other people today."
    for i in range(12)
)


def test_editor_output_feeds_the_next_step_and_the_split_is_shared():
    steps = parse_steps(["refinedweb_lines", "gopher_quality"], where="t")
    view = TextView(GOOD + "\n12345\nSHOUTING HEADLINE HERE")
    _ = view.words  # computed once
    results = list(apply_steps(view, steps))
    assert [s.spec.name for s, _, _ in results] == ["refinedweb_lines", "gopher_quality"]
    (_, edit_verdict, edited), (_, quality_verdict, after) = results
    assert edit_verdict.keep and quality_verdict.keep
    assert "12345" not in edited.text and "SHOUTING" not in edited.text
    assert after is edited, "a filter must not rebuild the view"


def test_chain_stops_at_the_first_drop():
    steps = parse_steps(["gopher_quality", "refinedweb_lines"], where="t")
    results = list(apply_steps(TextView("too short"), steps))
    assert len(results) == 1 and results[0][1].reason == "gopher.too_few_words"
    assert set(registry()) >= {"gopher_quality", "gopher_repetition", "c4", "fineweb", "refinedweb_lines"}
