"""Language ID with py3langid's bundled model and with a fastText model trained here; the keep/drop rule."""
from __future__ import annotations

import sys

import pytest

from core.config import ConfigError, from_mapping
from transforms.langid import (
    LOW_SCORE,
    WRONG_LANGUAGE,
    LangIdConfig,
    check_language,
    ensure_available,
    load_identifier,
)

PARAGRAPHS = {
    "en": "The committee met on Tuesday to discuss the new budget, and after a long debate the members agreed "
          "that the money should be spent on the schools and the hospital rather than on the new road.",
    "de": "Der Ausschuss traf sich am Dienstag, um über den neuen Haushalt zu beraten, und nach einer langen "
          "Debatte waren sich die Mitglieder einig, dass das Geld für die Schulen ausgegeben werden soll.",
    "fr": "Le comité s'est réuni mardi pour discuter du nouveau budget et, après un long débat, les membres ont "
          "convenu que l'argent devrait être consacré aux écoles et à l'hôpital plutôt qu'à la route.",
    "es": "El comité se reunió el martes para discutir el nuevo presupuesto y, después de un largo debate, los "
          "miembros acordaron que el dinero debería gastarse en las escuelas y en el hospital.",
}


@pytest.mark.parametrize("lang", sorted(PARAGRAPHS))
def test_py3langid_names_the_language(lang: str) -> None:
    identifier = load_identifier(LangIdConfig())
    got, score = identifier.predict(PARAGRAPHS[lang])
    assert got == lang
    assert score >= 0.65


@pytest.mark.parametrize("junk", ["", "12345 678", "Home | Login", "§§ ## @@"])
def test_short_junk_gets_a_low_score(junk: str) -> None:
    _, score = load_identifier(LangIdConfig()).predict(junk)
    assert 0.0 <= score < 0.65


def test_max_chars_classifies_only_the_start() -> None:
    text = PARAGRAPHS["de"] + "\n" + PARAGRAPHS["en"] * 5
    assert load_identifier(LangIdConfig(max_chars=150)).predict(text)[0] == "de"
    assert load_identifier(LangIdConfig(max_chars=None)).predict(text)[0] == "en"


def test_check_language_keeps_a_listed_language() -> None:
    verdict = check_language("en", 0.9, cfg=LangIdConfig())
    assert verdict.keep
    assert verdict.stats == {"langid_score": 0.9}


def test_check_language_wrong_language() -> None:
    verdict = check_language("de", 0.99, cfg=LangIdConfig())
    assert verdict.reason == WRONG_LANGUAGE == "langid.wrong_language"
    assert verdict.stats == {"langid_score": 0.99}


def test_check_language_low_score_wins_over_language() -> None:
    assert check_language("en", 0.64, cfg=LangIdConfig()).reason == LOW_SCORE == "langid.low_score"
    assert check_language("de", 0.2, cfg=LangIdConfig()).reason == LOW_SCORE  # an unsure guess says nothing
    assert check_language("en", 0.65, cfg=LangIdConfig()).keep  # min_score is inclusive


def test_several_languages() -> None:
    cfg = from_mapping(LangIdConfig, {"languages": ["en", "de"], "min_score": 0.5}, where="langid")
    assert check_language("de", 0.7, cfg=cfg).keep
    assert check_language("fr", 0.7, cfg=cfg).reason == WRONG_LANGUAGE


@pytest.mark.parametrize("bad, match", [
    ({"languages": []}, "languages is empty"),
    ({"min_score": 1.5}, "min_score"),
    ({"max_chars": 0}, "max_chars"),
    ({"threshold": 0.5}, "valid keys are"),
])
def test_config_errors(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_mapping(LangIdConfig, bad, where="langid")


# --- fastText: a tiny supervised LID model trained here, loaded through model_path ---------------------

EN_WORDS = ("the of and to in is that it was for on are with as his they be at one have this from or had by "
            "word but what some we can out other were all there when up use your how said an each she which do "
            "their time if will way about many then them write would like so these her long make thing see him")
DE_WORDS = ("der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden "
            "aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur "
            "oder aber vor zur bis mehr durch man sein wurde sei hatte kann gegen vom können schon wenn habe")


@pytest.fixture(scope="module")
def fasttext_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transforms.quality.betr import train_supervised_file
    lines = []
    for label, vocab in (("en", EN_WORDS.split()), ("de", DE_WORDS.split())):
        for i in range(300):  # deterministic pseudo-sentences of 8 words
            lines.append(f"__label__{label} " + " ".join(vocab[(i * 7 + j * 13) % len(vocab)] for j in range(8)))
    train = tmp_path_factory.mktemp("lid") / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    path = train.with_name("lid.bin")
    train_supervised_file(str(train), str(path), {"epoch": 25, "lr": 0.5, "minn": 2, "maxn": 4, "dim": 16, "thread": 1,
                                                  "verbose": 0})
    return str(path)


def test_fasttext_model_path_predicts_codes_without_label_prefix(fasttext_model: str) -> None:
    identifier = load_identifier(LangIdConfig(model_path=fasttext_model))
    lang, score = identifier.predict("this is what they said about the way we write\nand the time it was")
    assert (lang, score > 0.65) == ("en", True)
    lang, score = identifier.predict("sie hat nicht gesagt, dass er noch\nauf dem weg zur schule war")
    assert (lang, score > 0.65) == ("de", True)
    assert 0.0 <= score <= 1.0


def test_fasttext_verdict(fasttext_model: str) -> None:
    cfg = LangIdConfig(model_path=fasttext_model)
    lang, score = load_identifier(cfg).predict("und die schule war nicht auf dem weg")
    assert check_language(lang, score, cfg=cfg).reason == WRONG_LANGUAGE


def test_missing_fasttext_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "fasttext", None)  # what `import fasttext` sees when it is not installed
    cfg = LangIdConfig(model_path=str(tmp_path / "lid.176.bin"))
    with pytest.raises(ImportError, match=r"pip install 'refinery\[fasttext\]'"):
        ensure_available(cfg)
    with pytest.raises(ImportError, match="refinery"):
        load_identifier(cfg)
