"""Write swallowmath's built-in sample deterministically: short math web pages as FineMath-like JSONL rows (id, url,
text), so the first run needs no download.

Each page is what the SwallowMath rewrite is for (configs/prompts/swallowmath.yaml): a question and a terse answer
buried in a forum or homework site's boilerplate (navigation, posting dates and user names, cookie notes, vote
counts, footers). Problems, sites and people are invented here from seeded draws; the text is original.
Run: python -m pipelines.sample_math [PATH]   (default: the packaged pipelines/data/sample_math.jsonl)
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Callable

from pipelines.sample_code import jsonl_sample_main

SAMPLE_MATH_PATH = Path(__file__).resolve().parent / "data" / "sample_math.jsonl"
SEED = 18  # issue 18, which asked for the sample
PAGES = 12

SITES = [("AlgebraCorner", "algebracorner.example.org"), ("HomeworkHub", "homeworkhub.example.com"),
         ("NumberNook", "numbernook.example.net"), ("Q&A Maths", "qamaths.example.org")]
NAVIGATION = ["Home | Forums | Ask a Question | Log in | Sign up", "Home > Algebra > Homework help",
              "Menu | Search | Latest questions | Unanswered | Tags", "Skip to content | Home | Topics | Help"]
COOKIES = ["This site uses cookies to improve your experience. By continuing you accept our use of cookies.",
           "We use cookies for analytics and ads. Accept all | Manage preferences",
           "Cookie notice: we store small files on your device. Read our privacy policy."]
USERS = ["mathfan_07", "jenny.k", "confused_student", "tutor_owl", "b_rivera", "sqrt_minus_one", "pat2019"]
FOOTERS = ["Privacy Policy | Terms of Use | Contact", "Share this question: Facebook | Twitter | Email",
           "Related questions: 5 more in this topic", "Report abuse | Help | Advertise with us"]


def _rectangle(r: random.Random) -> tuple[str, str]:
    w, h = r.randint(3, 15), r.randint(16, 30)
    return (f"a rectangle is {w} cm wide and {h} cm long, what is its perimeter and area??",
            f"P = {2 * (w + h)} cm, A = {w * h} cm^2")


def _linear(r: random.Random) -> tuple[str, str]:
    a, x, b = r.randint(2, 9), r.randint(2, 12), r.randint(1, 20)
    return f"solve for x: {a}x + {b} = {a * x + b}", f"x = {x}"


def _speed(r: random.Random) -> tuple[str, str]:
    km, hours = r.choice([(120, 2), (150, 3), (90, 1.5), (210, 3.5)])
    return (f"A train goes {km} km in {hours} hours. whats the average speed",
            f"{km}/{hours} = {km / hours:g} km/h")


def _dice(r: random.Random) -> tuple[str, str]:
    total = r.choice([7, 8, 9, 10])
    ways = 6 - abs(7 - total)
    return (f"Two fair dice are rolled. Probability that the sum is {total}?",
            f"{ways}/36 = {ways / 36:.3f}")


def _interest(r: random.Random) -> tuple[str, str]:
    principal, rate, years = r.choice([1000, 2500, 4000]), r.choice([3, 4, 5]), r.randint(2, 6)
    return (f"simple interest on ${principal} at {rate}% per year for {years} years? and the total?",
            f"I = {principal * rate * years // 100}, total {principal + principal * rate * years // 100}")


def _pythagoras(r: random.Random) -> tuple[str, str]:
    a, b, c = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25)])
    return f"right triangle legs {a} and {b}, how long is the hypotenuse", f"sqrt({a * a}+{b * b}) = {c}"


def _series(r: random.Random) -> tuple[str, str]:
    n = r.randint(20, 60)
    return f"what is 1 + 2 + 3 + ... + {n} (quick way pls)", f"{n}*{n + 1}/2 = {n * (n + 1) // 2}"


def _lcm(r: random.Random) -> tuple[str, str]:
    a, b = r.choice([(4, 6), (6, 8), (9, 12), (10, 15)])
    x, y = a, b
    while y:
        x, y = y, x % y
    return (f"Bus A comes every {a} min and bus B every {b} min. Both just left. When do they leave together "
            "again?", f"lcm({a},{b}) = {a * b // x} min")


PROBLEMS: list[Callable[[random.Random], tuple[str, str]]] = [
    _rectangle, _linear, _speed, _dice, _interest, _pythagoras, _series, _lcm]


def page(r: random.Random, n: int) -> dict[str, str]:
    """One scraped page: navigation, maybe a cookie note, the question with its poster, a terse answer, a footer."""
    site, host = r.choice(SITES)
    question, answer = PROBLEMS[n % len(PROBLEMS)](r)
    asker, helper = r.sample(USERS, 2)
    day, month, year = r.randint(1, 28), r.randint(1, 12), r.randint(2009, 2021)
    lines = [f"{site} | {r.choice(NAVIGATION)}"]
    if n % 3 != 2:
        lines.append(r.choice(COOKIES))
    lines += [f"Question posted by {asker} on {day:02d}/{month:02d}/{year}", question,
              f"{r.randint(0, 9)} answers | {r.randint(20, 900)} views",
              f"Best answer from {helper}: {answer}", f"Was this helpful? Yes ({r.randint(0, 40)}) | No",
              f"{r.choice(FOOTERS)} | (c) {year} {site}"]
    return {"id": f"math-{n:02d}", "url": f"https://{host}/q/{r.randint(10000, 99999)}", "text": "\n".join(lines)}


def sample_rows(pages: int = PAGES) -> list[dict[str, str]]:
    """The sample's pages, each problem kind at least once."""
    r = random.Random(SEED)
    return [page(r, n) for n in range(pages)]


def main(argv: list[str]) -> int:
    return jsonl_sample_main(argv, prog="python -m pipelines.sample_math", default=SAMPLE_MATH_PATH,
                             rows=sample_rows, what="math pages")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
