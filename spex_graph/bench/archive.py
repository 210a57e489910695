"""Finished queries' request records and trees, kept where the garbage collector
does not look.

A benchmark keeps every query's request records and final tree until its report
is built. As Python objects that is about a thousand GC-tracked containers per
query, and every full collection (frequent in a search: its short-lived
objects outlive the young generations) walks all of them, so the CPU cost per
query grew with the number of queries already finished. Packed — a tree as JSON
text, a record as a tuple of plain values — they are untracked by the collector
and far smaller; they are unpacked only when a report reads them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any, Generic, TypeVar, overload

from spex_graph.runtime.trace import RequestRecord

PackedRecord = tuple[Any, ...]
V = TypeVar("V")
P = TypeVar("P")
D = TypeVar("D")


def pack_dataclasses(items: Iterable[Any]) -> tuple[PackedRecord, ...]:
    """Dataclass instances whose fields hold atoms (str, numbers, None) as tuples of
    their field values, in field order (so GC-untracked)."""
    out: list[PackedRecord] = []
    names: tuple[str, ...] = ()
    kind: type | None = None
    for item in items:
        if type(item) is not kind:
            kind = type(item)
            names = tuple(f.name for f in dataclasses.fields(item))
        out.append(tuple(getattr(item, name) for name in names))
    return tuple(out)


def pack_records(records: Iterable[RequestRecord]) -> tuple[PackedRecord, ...]:
    """Records as tuples of their field values."""
    return pack_dataclasses(records)


def unpack_records(packed: Iterable[PackedRecord]) -> list[RequestRecord]:
    """Fresh RequestRecord objects from `pack_records` output."""
    return [RequestRecord(*values) for values in packed]


class PackedSequence(Sequence[D]):
    """A read-only list of dataclass instances kept packed (`pack_dataclasses`);
    indexing and iterating build fresh instances."""

    def __init__(self, kind: Callable[..., D], items: Iterable[D]) -> None:
        self._kind = kind
        self._packed = pack_dataclasses(items)

    @overload
    def __getitem__(self, index: int) -> D: ...

    @overload
    def __getitem__(self, index: slice) -> list[D]: ...

    def __getitem__(self, index: int | slice) -> D | list[D]:
        if isinstance(index, slice):
            return [self._kind(*values) for values in self._packed[index]]
        return self._kind(*self._packed[index])

    def __len__(self) -> int:
        return len(self._packed)


class PackedMapping(MutableMapping[str, V], Generic[V, P]):
    """Query id -> value, stored as `pack(value)`; reading returns `unpack(stored)`,
    a fresh copy."""

    def __init__(self, pack: Callable[[V], P], unpack: Callable[[P], V]) -> None:
        self._pack, self._unpack = pack, unpack
        self._packed: dict[str, P] = {}

    def __getitem__(self, query_id: str) -> V:
        return self._unpack(self._packed[query_id])

    def __setitem__(self, query_id: str, value: V) -> None:
        self._packed[query_id] = self._pack(value)

    def __delitem__(self, query_id: str) -> None:
        del self._packed[query_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)


def _tree_from_json(text: str) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads(text)
    return tree


def packed_records() -> PackedMapping[list[RequestRecord], tuple[PackedRecord, ...]]:
    """Query id -> its request records, kept as tuples of plain values."""
    return PackedMapping(pack_records, unpack_records)


def packed_trees() -> PackedMapping[dict[str, Any], str]:
    """Query id -> its final tree (a JSON-mode dict), kept as compact JSON text."""
    return PackedMapping(lambda tree: json.dumps(tree, separators=(",", ":")), _tree_from_json)
