"""A DoFn that collects a bundle's elements up to a size and hands them over in one batch."""
from __future__ import annotations

from typing import Any, Iterator

from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows

from transforms.beam.metrics import CountingFn


class BufferingFn(CountingFn):
    """Subclasses call `buffer(item, size)` from process and implement `flush(items)`; what flush yields is output.

    Batches amortise per-record work (a Parquet file, a numpy sort) over many elements while memory stays bounded
    by `limit`; the last batch of a bundle is flushed in finish_bundle, in the global window.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit

    def start_bundle(self) -> None:
        self._items: list[Any] = []
        self._size = 0

    def buffer(self, item: Any, size: int) -> Iterator:
        self._items.append(item)
        self._size += size
        if self._size >= self.limit:
            yield from self._drain()

    def finish_bundle(self) -> Iterator:
        for out in self._drain():  # outside process() every output needs its window, tagged ones too
            if isinstance(out, TaggedOutput):
                yield TaggedOutput(out.tag, GlobalWindows.windowed_value(out.value))
            else:
                yield GlobalWindows.windowed_value(out)
        yield from self.emit_counts()  # after the flush, which counts too

    def _drain(self) -> Iterator:
        items, self._items, self._size = self._items, [], 0
        if items:
            yield from self.flush(items)

    def flush(self, items: list[Any]) -> Iterator:
        raise NotImplementedError
