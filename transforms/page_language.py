"""True drop reasons for pages an extractor empties: a page in another language is a language drop.

jusText with its English stoplist (and, less often, any main-content extractor) returns nothing for most
non-English pages, which the funnel would count as `extract.empty`. For an empty extraction we read the page's
visible text (every text node outside script/style, Resiliparse without main-content detection) and ask the
recipe's language identifier; a page that is not in a kept language goes on with that text, so the langid stage
drops it with its true reason and score. A page in a kept language stays an empty extraction.
"""
from __future__ import annotations

from typing import Protocol


class Identifier(Protocol):
    def predict(self, text: str) -> tuple[str, float]: ...


def visible_text(html: str) -> str:
    """The page's visible text, one block per line, boilerplate included (cheap: no main-content scoring)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    text = extract_plain_text(HTMLTree.parse(html), preserve_formatting=True, main_content=False,
                              list_bullets=False, alt_texts=False, links=False, form_fields=False, noscript=False)
    return "\n".join(s for line in text.split("\n") if (s := line.strip()))


def other_language_text(html: str, *, identifier: Identifier, languages: tuple[str, ...]) -> str:
    """The visible text of a page the extractor emptied when it is not in `languages`, else "" (a true empty)."""
    text = visible_text(html)
    if not text:
        return ""
    language, _ = identifier.predict(text)
    return text if language not in languages else ""
