"""Bytes into every GroupByKey of an in-process FnApiRunner run, by transform: the encoded elements a cluster's
shuffle would move (keys, values and Beam's window encoding). Bench-only instrumentation of Beam's local runner."""
from __future__ import annotations

from collections import Counter

from apache_beam.runners.portability.fn_api_runner import execution, translations

TOTALS: Counter = Counter()  # GroupByKey transform name -> bytes appended to its grouping buffer
_NAMES: dict[int, str] = {}  # id(GroupingBuffer) -> its GroupByKey's transform name


def install() -> Counter:
    """Count from now on, in this process; returns the running totals."""
    get_buffer = execution.BundleContextManager.get_buffer
    append = execution.GroupingBuffer.append

    def counted_get_buffer(self, buffer_id: bytes, transform_id: str):
        buffer = get_buffer(self, buffer_id, transform_id)
        kind, name = translations.split_buffer_id(buffer_id)
        if kind == "group" and isinstance(buffer, execution.GroupingBuffer):
            _NAMES[id(buffer)] = name
        return buffer

    def counted_append(self, elements_data: bytes) -> None:
        TOTALS[_NAMES.get(id(self), "?")] += len(elements_data)
        append(self, elements_data)

    execution.BundleContextManager.get_buffer = counted_get_buffer
    execution.GroupingBuffer.append = counted_append
    return TOTALS
