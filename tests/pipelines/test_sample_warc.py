"""The shipped sample is exactly what the generator writes, and holds every kind of page the demo should show."""
from __future__ import annotations

from warcio.archiveiterator import ArchiveIterator

from pipelines.sample_warc import SAMPLE_PATH, build_sample_warc


def test_generator_is_deterministic_and_matches_the_shipped_file(tmp_path):
    first, second = tmp_path / "a.warc.gz", tmp_path / "b.warc.gz"
    n = build_sample_warc(first)
    build_sample_warc(second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == SAMPLE_PATH.read_bytes(), "regenerate with: python -m pipelines.sample_warc"
    assert n >= 30


def test_sample_mixes_encodings_languages_and_record_types():
    types, encodings, langs = [], set(), set()
    with open(SAMPLE_PATH, "rb") as fh:
        for record in ArchiveIterator(fh):
            types.append(record.rec_type)
            if record.rec_type == "response":
                encoding = record.http_headers.get_header("Content-Encoding")
                encodings.add(encoding)
                if encoding == "br":  # decoded by our reader; here only the mix of encodings matters
                    continue
                html = record.content_stream().read()
                langs.update(tag for tag in (b'lang="de"', b'lang="fr"', b'lang="es"', b'lang="en"') if tag in html)
    assert types[0] == "warcinfo" and types.count("response") >= 30
    assert {None, "gzip", "br"} <= encodings
    assert len(langs) == 4
