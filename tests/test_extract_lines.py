"""Our `lines` extractor: its line reading, its numeric pieces against hand formulas and scikit-learn, the trained
weights on pages they never saw, other scripts, hostile pages, and the training recipe end to end."""
from __future__ import annotations

import collections
import hashlib
import json
import re
import statistics

import numpy as np
import pytest
from resiliparse.extract.html2text import extract_plain_text

from core.config import ConfigError, from_mapping
from scripts.train_extractor import fit, fit_logistic, label_lines
from tests.conftest import shared_path
from transforms.extract import ExtractConfig, LinesConfig, PageTooLarge, extract_text
from transforms.extract_lines import (
    CONTEXT,
    FEATURES,
    LineModel,
    _features,
    context_features,
    extract_lines,
    page_lines,
)

LINES = ExtractConfig(extractor="lines")
F = {name: i for i, name in enumerate(FEATURES)}


def words(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\w+", text.lower()))


def f1(gold: str, text: str) -> float:
    """Bag-of-words F1 written out here (the bench's scorer is not the oracle of its own figures)."""
    g, t = words(gold), words(text)
    hit = sum((g & t).values())
    return 0.0 if not hit else 2 * hit / (sum(g.values()) + sum(t.values()))


PARAS = [
    "The harbour was built in the twelfth century by merchants who traded wool and salt along the coast, and the "
    "stone quay they laid is still used by the fishing boats that leave before dawn every day of the year.",
    "In the nineteenth century a railway line reached the town, and with it came the first hotels, a theatre and "
    "a promenade where families walked on summer evenings to watch the ships come in from the open sea.",
    "Today the old warehouses hold a museum, two restaurants and a school of boat building, and visitors come "
    "from far away to see the harbour at high tide, when the water reaches the top of the ancient steps.",
]
NAV = ["Home", "News", "Sport", "Weather", "Contact"]
PAGE = (f"<html><body><nav><ul>{''.join(f'<li><a href=/{n}>{n}</a></li>' for n in NAV)}</ul></nav>"
        "<div class=promo><a href=/x>Subscribe now and save 50 percent on your first year</a></div>"
        "<article><h2>A short history of the harbour</h2>"
        + "".join(f"<p>{p}</p>" for p in PARAS)
        + "<ul><li>Opening hours: 9 to 5</li><li>Entry: free</li></ul>"
        "<table><tr><td>Year</td><td>Ships</td></tr><tr><td>1850</td><td>120</td></tr></table>"
        "</article><footer><a href=/legal>Legal notice</a> | <a href=/privacy>Privacy</a></footer></body></html>")


def test_lines_are_resiliparse_main_content_lines_with_their_markup() -> None:
    page = page_lines(PAGE)
    row = {t: page.features[i] for i, t in enumerate(page.texts)}
    # The candidates are Resiliparse's main-content lines (menus and footers already gone), read here from the
    # library itself; white space collapsed except one tab between table cells.
    main = [" ".join(x.split()) for x in extract_plain_text(PAGE, preserve_formatting=True, main_content=True,
                                                            list_bullets=False, alt_texts=False,
                                                            comments=False).split("\n") if x.strip()]
    assert [" ".join(t.split()) for t in page.texts] == main and not set(NAV) & set(page.texts)
    heading = row["A short history of the harbour"]
    assert heading[F["heading"]] == 1.0 and heading[F["heading_level"]] == 2.0
    for p in PARAS:
        assert row[p][F["paragraph"]] == 1.0 and row[p][F["link_density"]] == 0.0
        assert row[p][F["log_words"]] == pytest.approx(np.log1p(len(p.split())))  # words = spaces + 1
        assert row[p][F["log_chars"]] == pytest.approx(np.log1p(len(p)))
    assert row["Year\tShips"][F["table_row"]] == 1.0 and "1850\t120" in row  # a table row: cells split by a tab
    promo = row["Subscribe now and save 50 percent on your first year"]
    assert promo[F["link_density"]] == 1.0 and promo[F["links"]] == pytest.approx(np.log1p(1))
    # Segments run from one heading to the next; the article's is the wordiest.
    assert [bool(row[t][F["top_segment"]]) for t in page.texts] == [False] + [True] * (len(page.texts) - 1)


def test_list_items_and_links_across_lines() -> None:
    html = ("<article><p>" + PARAS[0] + "</p><ol><li>Boil the water</li><li><a href=/p>Add the pasta</a></li>"
            "</ol><p>" + PARAS[1] + "</p></article>")
    row = dict(zip((page := page_lines(html)).texts, page.features))
    assert row["Boil the water"][F["list_item"]] == 1.0 and row["Boil the water"][F["link_density"]] == 0.0
    assert row["Add the pasta"][F["list_item"]] == 1.0 and row["Add the pasta"][F["link_density"]] == 1.0
    assert row[PARAS[1]][F["list_item"]] == 0.0  # the list closed


def test_character_counts_are_unicode_aware() -> None:
    page = page_lines("<p>ÀB1 ç_2x</p><p>Ωμέγα 42</p>")
    a, b = page.features
    # "ÀB1 ç_2x": 8 chars, 2 digits, upper À B, word chars all but the space (7), 2 words.
    assert (a[F["digit_frac"]], a[F["upper_frac"]], a[F["mean_word_len"]]) == (2 / 8, 2 / 8, 7 / 2)
    assert a[F["punct_frac"]] == pytest.approx(0.0)
    # "Ωμέγα 42": 8 chars, 2 digits, 1 upper (Ω), 7 word chars.
    assert (b[F["digit_frac"]], b[F["upper_frac"]], b[F["mean_word_len"]]) == (2 / 8, 1 / 8, 7 / 2)


def test_segments_and_long_lines_by_hand() -> None:
    long = " ".join(f"w{i}" for i in range(30))
    page = _features(f"<h2>One</h2>\n<p>short a</p>\n<p>{long}</p>\n<h2>Two</h2>\n<p>b c</p>")
    col = {name: page.features[:, F[name]].tolist() for name in FEATURES}
    # Segments by hand: [One, short a, long] has 1 + 2 + 30 words, [Two, b c] 1 + 2.
    assert col["segment_words"] == pytest.approx(np.log1p([33, 33, 33, 3, 3]).tolist())
    assert col["top_segment"] == [1, 1, 1, 0, 0] and col["after_top_segment"] == [0, 0, 0, 1, 1]
    assert col["long_para"] == [0, 0, 1, 0, 0] and col["before_long"] == [1, 1, 0, 0, 0]
    assert col["after_long"] == [0, 0, 0, 1, 1]
    assert col["long_distance"] == pytest.approx(np.log1p([2, 1, 0, 1, 2]).tolist())
    assert col["prev_words"] == pytest.approx([0, *np.log1p([1, 2, 30, 1])])
    assert col["position"] == [0, 0.25, 0.5, 0.75, 1]


def test_context_features_by_hand() -> None:
    logit = np.array([1.0, -2.0, 3.0, 0.0])
    out = context_features(logit)
    assert out.shape == (4, len(CONTEXT))
    assert np.allclose(out[:, 1], [0, 1, -2, 3]) and np.allclose(out[:, 2], [-2, 3, 0, 0])
    assert np.allclose(out[:, 3], [(1 - 2 + 3) / 3, (1 - 2 + 3 + 0) / 4, (1 - 2 + 3 + 0) / 4, (-2 + 3 + 0) / 3])
    assert np.allclose(out[:, 5], 0.5) and np.allclose(out[:, 6], [1 / 3, 1, 0, 2 / 3])  # rank 0 = highest


def test_newton_logistic_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x @ [1.5, -2.0, 0.5] + rng.normal(size=400) > 0).astype(float)
    w = rng.uniform(0.1, 2.0, size=400)
    ours = fit_logistic(np.hstack([np.ones((400, 1)), x]), y, w, l2=0.7)
    # sklearn minimises C * sum(w * loss) + ||beta||^2 / 2 with an unpenalised intercept: ours with C = 1 / l2.
    ref = LogisticRegression(C=1 / 0.7, tol=1e-10, max_iter=10_000).fit(x, y, sample_weight=w)
    assert np.allclose(ours, np.concatenate([ref.intercept_, ref.coef_[0]]), atol=1e-5)


def test_labels_follow_the_gold_trigrams() -> None:
    gold = "The quick brown fox jumps over the lazy dog. Read more"
    texts = ["the quick brown fox jumps", "Share this article on social media", "Read more", "Subscribe",
             "fox jumps high"]
    # 3/3 trigrams in gold; 0/4; short line found whole; short line not found whole; 0 of 1 trigram ("fox jumps
    # high" is not in gold).
    assert label_lines(texts, gold).tolist() == [1, 0, 1, 0, 0]


def hand_model(threshold: float) -> LineModel:
    """Stage 1 keeps long non-link lines, stage 2 passes stage 1 through: weights a person can read."""
    stage1 = np.zeros(len(FEATURES))
    stage1[[F["bias"], F["log_words"], F["link_density"]]] = [-6.0, 2.0, -8.0]
    stage2 = np.zeros(len(FEATURES) + len(CONTEXT))
    stage2[len(FEATURES) + CONTEXT.index("logit")] = 1.0
    return LineModel(stage1, stage2, threshold)


def test_model_keeps_long_prose_and_the_heading_above_it() -> None:
    text = extract_lines(PAGE, hand_model(0.5))
    # By hand: a 40-word paragraph scores -6 + 2 ln(41) = 1.4 > 0 (p 0.8); the 10-word all-link promo -6 + 2 ln(11)
    # - 8 < 0; the 6-word heading -6 + 2 ln(7) < 0, but it stands right above kept text.
    assert text.split("\n") == ["A short history of the harbour", *PARAS]
    assert extract_lines(PAGE, hand_model(0.5), headings=False).split("\n") == PARAS


def test_nothing_above_threshold_falls_back_to_resiliparse_main_content() -> None:
    main = [s for x in extract_plain_text(PAGE, preserve_formatting=True, main_content=True, list_bullets=False,
                                          alt_texts=False, comments=False).split("\n") if (s := " ".join(x.split()))]
    kept = [" ".join(x.split()) for x in extract_lines(PAGE, hand_model(1.0)).split("\n")]  # a table row keeps a tab
    assert main and kept == main


def test_weights_round_trip_and_stale_weights_are_refused(tmp_path) -> None:
    model = hand_model(0.4)
    again = LineModel.from_json(model.to_json())
    assert np.array_equal(again.stage1, model.stage1) and again.threshold == 0.4
    stale = json.loads(model.to_json())
    stale["features"] = stale["features"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(stale))
    with pytest.raises(ConfigError, match="retrain"):
        from_mapping(ExtractConfig, {"extractor": "lines", "lines": {"weights": str(tmp_path / "old.json")}},
                     where="extract")
    missing = {"lines": {"weights": str(tmp_path / "missing.json")}}
    with pytest.raises(ConfigError, match="lines.weights"):
        from_mapping(ExtractConfig, {"extractor": "lines", **missing}, where="extract")
    # Another extractor never reads the weights (the trainer must run while they are stale).
    assert from_mapping(ExtractConfig, {"extractor": "resiliparse", **missing}, where="extract").extractor


@pytest.mark.parametrize("lang, paras, nav", [
    ("ja", ["東京の古い港は江戸時代に商人たちによって作られ、今でも毎朝早くから漁船が出港し、多くの観光客が訪れる。" * 2,
            "明治時代には鉄道が町まで延び、ホテルや劇場が建てられ、夏の夕方には家族連れが海辺の遊歩道を散歩した。" * 2],
     ["ホーム", "ニュース", "お問い合わせ"]),
    ("ru", ["Старый порт был построен купцами в двенадцатом веке, и каменная пристань до сих пор служит рыбакам, "
            "которые выходят в море каждое утро задолго до рассвета, в любую погоду и в любое время года.",
            "В девятнадцатом веке к городу подошла железная дорога, появились гостиницы, театр и набережная, где "
            "семьи гуляли летними вечерами и смотрели, как корабли возвращаются из открытого моря в гавань."],
     ["Главная", "Новости", "Контакты"]),
    ("ar", ["بنى التجار الميناء القديم في القرن الثاني عشر، وما زال الرصيف الحجري يستخدمه الصيادون الذين يخرجون إلى "
            "البحر كل صباح قبل الفجر في كل فصول السنة مهما كان الطقس.",
            "في القرن التاسع عشر وصل خط السكة الحديد إلى المدينة، فبنيت الفنادق والمسرح والكورنيش الذي كانت العائلات "
            "تتنزه عليه في أمسيات الصيف لمشاهدة السفن القادمة من البحر."],
     ["الرئيسية", "الأخبار", "اتصل بنا"]),
])
def test_other_scripts_keep_the_article_and_drop_the_menu(lang: str, paras: list[str], nav: list[str]) -> None:
    html = (f"<html lang={lang}><body><nav><ul>{''.join(f'<li><a href=/{i}>{n}</a></li>' for i, n in enumerate(nav))}"
            f"</ul></nav><article>{''.join(f'<p>{p}</p>' for p in paras)}</article>"
            "<footer><a href=/a>© 2024</a></footer></body></html>")
    lines = extract_text(html, LINES).split("\n")
    assert all(p in lines for p in paras)
    assert not set(nav) & set(lines)


@pytest.mark.parametrize("html", [
    "", "   ", "<html></html>", "<<<>>>", "\x00\x01binary\xff junk", "<p>" * 5000 + "deep" + "</p>" * 10,
    "<table>" + "<tr><td>x</td>" * 3000, "<div><p>unclosed <b>bold <i>italic" * 200,
    "<p>caf\ufffd au lait, na\ufffdve r\ufffdsum\ufffd</p>",  # bytes that did not decode, as the reader gives them
])
def test_hostile_pages_never_crash(html: str) -> None:
    out = extract_text(html, LINES)
    assert isinstance(out, str) and "\n\n" not in out and "<" not in out.replace("<<<>>>", "")


def test_ten_megabyte_page() -> None:
    paras = [f"<p>Paragraph {i} of the long report: {PARAS[i % 3]}</p>" for i in range(10_000_000 // 230)]
    html = "<html><body><nav><a href=/>Home</a></nav>" + "".join(paras) + "</body></html>"
    assert len(html) > 10_000_000
    with pytest.raises(PageTooLarge):
        extract_text(html, LINES)  # the default cap names itself ...
    text = extract_text(html, ExtractConfig(extractor="lines", max_html_chars=None))  # ... and without it, it runs
    kept = set(text.split("\n"))
    assert all(p[3:-4] in kept for p in paras)


def test_deterministic_across_calls() -> None:
    first = extract_text(PAGE, LINES)
    assert all(extract_text(PAGE, LINES) == first for _ in range(3))


def test_training_recipe_learns_from_gold_pages() -> None:
    """scripts.train_extractor's fit on made-up pages: the model it learns keeps the prose of an unseen page."""
    rng = np.random.default_rng(1)
    vocab = "river stone bridge market school church mill valley farm road house square train".split()

    def prose() -> str:
        return " ".join(rng.choice(vocab, size=30)) + "."

    def page() -> tuple[str, str]:
        body = [prose() for _ in range(4)]
        junk = [f"<li><a href=/{i}>{w}</a></li>" for i, w in enumerate(rng.choice(vocab, 6))]
        html = (f"<body><ul>{''.join(junk)}</ul><div>{''.join(f'<p>{b}</p>' for b in body)}</div>"
                f"<div><a href=/t>Terms</a> | <a href=/p>Privacy</a></div></body>")
        return html, "\n".join(body)

    train = []
    for html, gold in (page() for _ in range(12)):
        lines = page_lines(html)
        train.append((lines, label_lines(lines.texts, gold), gold))
    model = fit(train)
    html, gold = page()
    assert f1(gold, extract_lines(html, model)) > 0.95


def held_out_f1(extractor: str) -> dict[str, float]:
    """Mean F1 per source on fold 0 (one cleaneval page has no gold text and is left out)."""
    from bench.data.extraction_quality import HELD_OUT_FOLD, fold, load_pages

    scores: dict[str, list[float]] = {}
    for p in load_pages(shared_path("extraction")):
        if p.gold and fold(p) == HELD_OUT_FOLD:
            text = extract_text(p.html, ExtractConfig(extractor=extractor))
            scores.setdefault(p.dataset, []).append(f1(p.gold, text))
    return {source: statistics.fmean(v) for source, v in scores.items()} | {
        "all": statistics.fmean(x for v in scores.values() for x in v)}


def test_held_out_gold_pages() -> None:
    """The shipped weights on fold 0, which training never saw. Measured at the commit that trained them:
    scrapinghub 0.912, cleaneval 0.875, dragnet 0.957 (4 pages), all 0.903; floors sit ~0.02 below. And above
    Resiliparse's main-content text on the same pages overall (0.880): the line model filters its lines."""
    ours, theirs = held_out_f1("lines"), held_out_f1("resiliparse")
    floors = {"scrapinghub-aeb": 0.89, "cleaneval": 0.85, "dragnet": 0.93, "all": 0.88}
    assert all(ours[k] >= floor for k, floor in floors.items()), ours
    assert ours["all"] > theirs["all"], (ours, theirs)


def test_fold_split_is_stable() -> None:
    """The held-out split must not move between machines: fold = sha1("dataset/name") % 4, computed by hand."""
    from bench.data.extraction_quality import Page, fold

    page = Page("dragnet", "R229", "")
    assert fold(page) == int(hashlib.sha1(b"dragnet/R229").hexdigest(), 16) % 4


def test_lines_config_defaults() -> None:
    assert LinesConfig().headings and LinesConfig().weights.endswith(".json")


def test_shipped_weights_are_what_the_training_recipe_gives(tmp_path) -> None:
    """`python -m scripts.train_extractor` on the shared gold pages reproduces configs/models/extract_lines.json:
    the weights in the repo are the recipe's output on folds 1-3, not hand-edited."""
    from core.resources import resolve_resource
    from scripts.train_extractor import main

    out = tmp_path / "weights.json"
    main(["--data", str(shared_path("extraction")), "--out", str(out)])
    ours = LineModel.from_json(out.read_text())
    shipped = LineModel.from_json(open(resolve_resource(LinesConfig().weights), encoding="utf-8").read())
    assert ours.threshold == shipped.threshold
    assert np.allclose(ours.stage1, shipped.stage1, atol=1e-6) and np.allclose(ours.stage2, shipped.stage2, atol=1e-6)
