"""astroid's module cache kept right across the snippets one pylint process lints: which cached modules a snippet
changed (inference side effects) and what to evict or re-apply, so that each snippet scores as if linted alone
(transforms/code/lint_pool.py runs the snippets)."""
from __future__ import annotations

from typing import Any


def conflicts(writer: str, sleepers: dict[str, list], reads: dict[str, dict[str, None]]) -> bool:
    """Whether a writer woken with `writer` writes the same attribute of the same table: the order of
    those writes could then differ from a fresh build's, so `writer` is evicted instead."""
    own = {(id(table), attrname) for table, attrname, *_ in sleepers[writer]}
    seen, todo = {writer}, list(reads.get(writer, ()))
    while todo:
        other = todo.pop()
        if other in seen:
            continue
        seen.add(other)
        if other in sleepers and own & {(id(table), attrname) for table, attrname, *_ in sleepers[other]}:
            return True
        todo.extend(reads.get(other, ()))
    return False


def drop(table: dict, attrname: str, node: Any) -> None:
    values = table.get(attrname)
    if values is not None and node in values:
        values.remove(node)
        if not values:
            del table[attrname]


class TrackingCache(dict):
    """astroid's module cache (name -> Module) that wakes dormant writers on a hit, and records, per
    module built, which cached modules its post-build step read and whether it built any other."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.touching = False
        self.dormant: dict[str, list[tuple[dict, str, Any, str]]] = {}  # writer -> undone (table, name, node, module)
        self.active: set[str] = set()  # dormant writers whose writes are applied in this snippet
        self.touched: set[str] = set()  # modules hit in this snippet
        self.reads: dict[str, dict[str, None]] = {}  # module -> modules read or built while it was built, in order
        self.stack: list[tuple[str, dict]] = []  # (name, reads) per build in progress

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        for frame in self.stack:
            if frame[0] != key:
                frame[1][key] = None
        if self.touching and key not in self.touched:
            self._touch(key)
        return value

    def _touch(self, key: str) -> None:
        """A fresh process would build `key` here, and with it what its build read or built: wake the
        dormant writers among those, the ones read first."""
        order, todo = [], [(key, False)]
        while todo:
            name, done = todo.pop()
            if done:
                order.append(name)
            elif name not in self.touched and dict.__contains__(self, name):
                self.touched.add(name)
                todo.append((name, True))
                todo.extend((read, False) for read in reversed(self.reads.get(name, {})))
        for name in order:
            if name in self.dormant:
                self.active.add(name)
                for table, attrname, node, _ in self.dormant[name]:
                    values = table.setdefault(attrname, [])
                    if node not in values:
                        values.append(node)

    def setdefault(self, key: str, default: Any = None) -> Any:
        for frame in self.stack:
            if frame[0] != key:
                frame[1][key] = None
        return super().setdefault(key, default)


def install_tracking_cache() -> TrackingCache:
    """Swap astroid's cache dict for a TrackingCache (same contents) and wrap AstroidBuilder._post_build."""
    from astroid import MANAGER
    from astroid.builder import AstroidBuilder
    from astroid.manager import AstroidManager

    if isinstance(MANAGER.astroid_cache, TrackingCache):
        return MANAGER.astroid_cache
    cache = TrackingCache(MANAGER.astroid_cache)
    AstroidManager.brain["astroid_cache"] = MANAGER.astroid_cache = cache
    original = AstroidBuilder._post_build

    def _post_build(self: Any, module: Any, builder: Any, encoding: str) -> Any:
        frame = (module.name, {})
        cache.stack.append(frame)
        try:
            return original(self, module, builder, encoding)
        finally:
            cache.stack.pop()
            cache.reads[module.name] = frame[1]

    AstroidBuilder._post_build = _post_build
    return cache


def remove_foreign(node: Any, target: Any, module: Any) -> list[tuple[dict, str]]:
    """Drop `node` from another module's locals / instance_attrs: (table, that module's name) it was in."""
    holder = getattr(target, "_proxied", target)
    try:
        root = holder.root()
    except AttributeError:
        return []
    if root is module:
        return []
    removed = []
    for table in (getattr(holder, "instance_attrs", None), getattr(holder, "locals", None)):
        if isinstance(table, dict) and node in table.get(node.attrname, ()):
            drop(table, node.attrname, node)
            removed.append((table, root.name))
    return removed


def clear_inference_caches() -> None:
    """Inference results may hold the undone entries: drop them (cheap, unlike clear_cache's rebuilds)."""
    from astroid.context import _invalidate_cache
    from astroid.inference_tip import clear_inference_tip_cache
    from astroid.nodes._base_nodes import LookupMixIn
    from pylint.checkers.clear_lru_cache import clear_lru_caches

    _invalidate_cache()
    clear_inference_tip_cache()
    LookupMixIn.lookup.cache_clear()
    clear_lru_caches()
