"""The per-document part of a web recipe as one composite: URL filter, extraction, language ID, quality steps."""
from __future__ import annotations

import apache_beam as beam

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
            pages, rej = pages | "UrlFilter" >> beam.ParDo(UrlFilterFn(r.url_filter, emit_rejected=self.emit)).with_outputs(REJECTED, main="out")
            rejected.append(rej)
        docs, rej = pages | "Extract" >> beam.ParDo(ExtractFn(r.extract, emit_rejected=self.emit)).with_outputs(REJECTED, main="out")
        rejected.append(rej)
        if r.langid is not None:
            docs, rej = docs | "LanguageId" >> beam.ParDo(LangIdFn(r.langid, emit_rejected=self.emit)).with_outputs(REJECTED, main="out")
            rejected.append(rej)
        if r.steps:
            docs, rej = docs | "Quality" >> beam.ParDo(QualityStepsFn(r.steps, emit_rejected=self.emit)).with_outputs(REJECTED, main="out")
            rejected.append(rej)
        return docs, rejected
