"""The per-document part of a web recipe as one composite: URL filter, extraction, language ID, quality steps."""
from __future__ import annotations

import apache_beam as beam

from transforms.beam.metrics import Counted
from transforms.beam.stages import REJECTED, ExtractFn, LangIdFn, QualityStepsFn, UrlFilterFn
from transforms.recipe import WebRecipe


class WebDocuments(beam.PTransform):
    """Pages -> documents through URL filter, extraction, language ID and the quality steps."""

    def __init__(self, recipe: WebRecipe, *, emit_rejected: bool) -> None:
        super().__init__()
        self.recipe, self.emit = recipe, emit_rejected

    def expand(self, pages):
        r, rejected = self.recipe, []
        if r.url_filter is not None:
            pages, rej = pages | "UrlFilter" >> Counted(UrlFilterFn(r.url_filter, emit_rejected=self.emit), tags=(REJECTED,))
            rejected.append(rej)
        extract = ExtractFn(r.extract, emit_rejected=self.emit, langid=r.langid)  # langid: true drop reasons
        docs, rej = pages | "Extract" >> Counted(extract, tags=(REJECTED,))
        rejected.append(rej)
        if r.langid is not None:
            docs, rej = docs | "LanguageId" >> Counted(LangIdFn(r.langid, emit_rejected=self.emit), tags=(REJECTED,))
            rejected.append(rej)
        if r.steps:
            docs, rej = docs | "Quality" >> Counted(QualityStepsFn(r.steps, emit_rejected=self.emit), tags=(REJECTED,))
            rejected.append(rej)
        return docs, rejected
