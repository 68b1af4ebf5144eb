"""Count what autograd keeps for backward: live bytes of saved activations, via saved_tensors_hooks.

Used by the StreamBP and local-learning benchmarks and tests to measure activation memory directly, apart
from allocator noise. Parameters saved by their own ops (a weight kept for a matmul's backward) are not
activations and are skipped; storages shared by several saved views are counted once while any is alive.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn


class _Saved:
    """Holds one saved tensor; when autograd drops it, the meter's live count goes down."""

    __slots__ = ("tensor", "meter", "key")

    def __init__(self, tensor: torch.Tensor, meter: "SavedActivations", key: int | None) -> None:
        self.tensor, self.meter, self.key = tensor, meter, key

    def __del__(self) -> None:
        if self.key is not None:
            self.meter._release(self.key)


class SavedActivations:
    """with SavedActivations(model) as meter: ... ; meter.peak_bytes, meter.total_bytes."""

    def __init__(self, params: nn.Module | Iterable[torch.Tensor] = ()) -> None:
        tensors = params.parameters() if isinstance(params, nn.Module) else params
        self.param_ptrs = {p.untyped_storage().data_ptr() for p in tensors}
        self.live: dict[int, list[int]] = {}  # storage pointer -> [bytes, references]
        self.live_bytes = 0
        self.peak_bytes = 0
        self.total_bytes = 0
        self._hooks: Any = None

    def _pack(self, tensor: torch.Tensor) -> _Saved:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self.param_ptrs or storage.nbytes() == 0:
            return _Saved(tensor, self, None)
        entry = self.live.get(ptr)
        if entry is None:
            self.live[ptr] = [storage.nbytes(), 1]
            self.live_bytes += storage.nbytes()
            self.total_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        else:
            entry[1] += 1
        return _Saved(tensor, self, ptr)

    @staticmethod
    def _unpack(saved: _Saved) -> torch.Tensor:
        return saved.tensor

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self.live[ptr]

    def add_held(self, nbytes: int) -> None:
        """Count tensors a method keeps outside autograd (checkpointed layer inputs) toward the live total."""
        self.live_bytes += nbytes
        self.total_bytes += max(nbytes, 0)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def __enter__(self) -> "SavedActivations":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
