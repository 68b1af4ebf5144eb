"""One realistic rewriter answer per parsing rule, with the reason it must produce; the repetition filter vs its regex."""
from __future__ import annotations

import random
import re

import pytest

from transforms.llm import parse
from transforms.llm.parse import has_degenerate_repetition, parse_math, parse_scor, parse_sgcr

IMPROVED = '''def mean(values: list[float]) -> float:
    """Average of a non-empty list."""
    ### guard: a "###" comment must not end the section
    if not values:
        raise ValueError("values must be non-empty")
    return sum(values) / len(values)'''

SGCR = f"""### Evaluation: 4

### Suggestions:
- Rename `l` to `values`.
- Add a docstring and type hints.

### Improved Code:
Here is the revised version:
```python
{IMPROVED}
```
"""


def sgcr_with(evaluation: str) -> str:
    return SGCR.replace("### Evaluation: 4", evaluation)


def test_sgcr_well_formed() -> None:
    result = parse_sgcr(SGCR)
    assert result.keep and result.reason is None
    assert result.score == 4.0
    assert result.suggestions == ("- Rename `l` to `values`.", "- Add a docstring and type hints.")
    assert result.code == IMPROVED
    assert result.raw == SGCR


@pytest.mark.parametrize(
    ("evaluation", "score"),
    [
        ("### Evaluation: 7.5", 7.5),
        ("### Evaluation: 8/10", 8.0),
        ("### Evaluation: **9**", 9.0),
        ("### Evaluation:\n6", 6.0),  # the number on the next line
        ("### Evaluation: good", parse.NO_SCORE),
        ("### Evaluation: 11", parse.NO_SCORE),  # out of range is unreadable, never clamped
        ("### Evaluation: 0", parse.NO_SCORE),
        ("### Score: 7", parse.NO_SCORE),  # no Evaluation section
    ],
)
def test_sgcr_score(evaluation: str, score: float) -> None:
    result = parse_sgcr(sgcr_with(evaluation))
    assert result.score == score
    assert result.keep  # an unreadable score is stored, not a drop


def test_sgcr_missing_improved_code_section() -> None:
    text = SGCR.split("### Improved Code:")[0]
    result = parse_sgcr(text)
    assert result.reason == parse.SGCR_NO_SECTION
    assert result.score == 4.0 and len(result.suggestions) == 2 and result.code is None


def test_sgcr_block_without_python_tag_is_dropped() -> None:
    assert parse_sgcr(SGCR.replace("```python", "```")).reason == parse.SGCR_NO_CODE_BLOCK
    assert parse_sgcr(SGCR.replace("```python", "```py")).reason == parse.SGCR_NO_CODE_BLOCK


def test_sgcr_unterminated_block_is_dropped() -> None:
    text = SGCR.rstrip().removesuffix("```")  # the model ran out of tokens mid-block
    assert parse_sgcr(text).reason == parse.SGCR_NO_CODE_BLOCK


def test_sgcr_empty_block_is_dropped() -> None:
    text = "### Evaluation: 3\n### Suggestions:\n- none\n### Improved Code:\n```python\n\n```\n"
    assert parse_sgcr(text).reason == parse.SGCR_EMPTY_CODE


def test_sgcr_takes_first_python_block_of_the_section() -> None:
    text = SGCR + "\nOr, shorter:\n```python\nmean = lambda v: sum(v) / len(v)\n```\n"
    assert parse_sgcr(text).code == IMPROVED


def test_sgcr_crlf_and_prose_around() -> None:
    text = "Sure! Here is my review.\r\n\r\n" + SGCR.replace("\n", "\r\n") + "\r\nLet me know if you need more.\r\n"
    result = parse_sgcr(text)
    assert result.keep and result.score == 4.0 and result.code == IMPROVED
    assert result.suggestions[0] == "- Rename `l` to `values`."
    assert result.raw == text


def test_sgcr_python_block_outside_the_section_does_not_count() -> None:
    text = "### Evaluation: 5\n```python\nx = 1\n```\n### Suggestions:\n- a\n### Improved Code:\nNo changes needed.\n"
    assert parse_sgcr(text).reason == parse.SGCR_NO_CODE_BLOCK


SCOR = f"""Here is a self-contained version of the code:

```python
{IMPROVED}


if __name__ == "__main__":
    print(mean([1.0, 2.0, 3.0]))
```

It validates its input and documents the function.
"""


def test_scor_well_formed() -> None:
    result = parse_scor(SCOR)
    assert result.keep
    assert result.code is not None and result.code.startswith("def mean(")
    assert result.code.endswith("print(mean([1.0, 2.0, 3.0]))\n") and not result.code.endswith("\n\n")
    assert result.raw == SCOR


def test_scor_any_language_tag_or_none() -> None:
    for opener in ("```", "```py", "```python3"):
        assert parse_scor(SCOR.replace("```python", opener)).code == parse_scor(SCOR).code


def test_scor_takes_the_first_complete_block() -> None:
    text = "First:\n```python\nprint('one and only the first')\n```\nThen:\n```python\nprint('two')\n```\n"
    assert parse_scor(text).code == "print('one and only the first')\n"


def test_scor_backticks_inside_code_do_not_close_the_block() -> None:
    text = '```python\nFENCE = "```"  # markdown fence marker used in the docs\nprint(FENCE)\n```\n'
    assert parse_scor(text).code == 'FENCE = "```"  # markdown fence marker used in the docs\nprint(FENCE)\n'


def test_scor_unterminated_and_missing_blocks() -> None:
    assert parse_scor(SCOR.split("\n```\n")[0]).reason == parse.SCOR_NO_CODE_BLOCK
    prose = "I cannot rewrite this snippet because it only contains configuration constants without logic."
    assert parse_scor(prose).reason == parse.SCOR_NO_CODE_BLOCK
    assert parse_scor("```python\n   \n```\n" + " " * 60).reason == parse.SCOR_EMPTY_CODE


def test_scor_short_output_is_dropped_at_50_chars() -> None:
    fifty = "```python\nprint(1)\n```\n" + "#" * 27
    assert len(fifty) == 50 and parse_scor(fifty).reason == parse.SCOR_TOO_SHORT
    assert parse_scor(fifty + "#").code == "print(1)\n"


def test_scor_crlf() -> None:
    assert parse_scor(SCOR.replace("\n", "\r\n")).code == parse_scor(SCOR).code


MATH = """**Problem:** A rectangle has a perimeter of 36 cm and its length is twice its width. Find its area.

**Solution:**
1. Let the width be $w$; then the length is $2w$ and the perimeter is $2(w + 2w) = 6w = 36$, so $w = 6$.
2. The length is $12$ cm, so the area is $12 \\times 6 = 72$ cm$^2$.

#### 72 cm^2
"""


def test_math_keeps_text_and_extracts_answer() -> None:
    result = parse_math("\n" + MATH + "\n\n")
    assert result.keep and result.text == MATH
    assert result.final_answer == "72 cm^2"


def test_math_without_answer_line_is_kept() -> None:
    text = MATH.replace("#### 72 cm^2\n", "The area is 72 square centimetres.\n")
    result = parse_math(text)
    assert result.keep and result.final_answer is None


def test_math_last_answer_line_wins_and_crlf() -> None:
    text = MATH.replace("**Solution:**", "#### draft\n**Solution:**").replace("\n", "\r\n")
    result = parse_math(text)
    assert result.final_answer == "72 cm^2" and "\r" not in (result.text or "")


def test_math_short_output_is_dropped() -> None:
    assert parse_math("#### 42").reason == parse.MATH_TOO_SHORT
    assert parse_math("x" * 50).reason == parse.MATH_TOO_SHORT
    assert parse_math("x" * 51).keep


def filler(n: int, seed: int = 7) -> str:
    """Code-like text with no repeated span of 100+ characters."""
    rng = random.Random(seed)
    words = ["value", "count", "index", "total", "items", "result", "node", "left", "right", "cache"]
    out = []
    while sum(map(len, out)) < n:
        out.append(f"    {rng.choice(words)}_{rng.randrange(10**6)} = {rng.choice(words)}_{rng.randrange(10**6)} + 1\n")
    return "".join(out)[:n]


def test_repetition_flags_a_looping_rewrite() -> None:
    span = filler(150, seed=1)  # newlines inside the span are allowed
    assert has_degenerate_repetition(filler(900) + span * 3)
    assert has_degenerate_repetition(filler(800) + span * 2 + filler(300, seed=2))


def test_repetition_needs_1000_chars_100_char_span_and_adjacency() -> None:
    span = filler(150, seed=1)
    assert not has_degenerate_repetition(filler(500) + span * 2)  # < 1000 chars
    assert not has_degenerate_repetition(filler(1200))
    assert not has_degenerate_repetition(filler(1000) + filler(99, seed=3) * 2)  # span of 99 only
    assert not has_degenerate_repetition(filler(800) + span + "x = 1\n" + span)  # copy not adjacent
    assert has_degenerate_repetition(filler(1000) + filler(100, seed=3) * 2)  # exactly 100


def test_repetition_matches_the_original_regex() -> None:
    rng = random.Random(0)
    for trial in range(3000):
        text = "".join(rng.choice("ab" if trial % 2 else "abc") for _ in range(rng.randint(0, 50)))
        if text and rng.random() < 0.4:
            i, length = rng.randrange(len(text)), rng.randint(1, 10)
            text = text[:i] + text[i : i + length] * rng.randint(2, 3) + text[i:]
        period = rng.randint(1, 8)
        expected = re.search(r"(.{%d,})(\1)+" % period, text, re.DOTALL) is not None
        assert has_degenerate_repetition(text, min_chars=0, min_period=period) == expected, (text, period)
