"""Packed per-query traces and trees: exact round trip, invisible to the GC."""

from __future__ import annotations

import gc

from spex_graph.bench.archive import packed_records, packed_trees
from spex_graph.runtime.trace import RequestRecord


def test_records_round_trip_and_are_untracked() -> None:
    records = [
        RequestRecord("r1", "q", "policy", "0/1", True, 1.0, 2.0, 3.5, "wasted", 10, 7),
        RequestRecord("r2", "q", "reward", "0/1", False, 1.5),
    ]
    store = packed_records()
    store["q"] = records
    gc.collect()  # a tuple of atoms is untracked by the first collection it meets,
    gc.collect()  # one of such tuples by the next
    assert store["q"] == records
    assert store["q"] is not store["q"], "a read is a fresh copy"
    assert not gc.is_tracked(store._packed["q"])
    assert list(store) == ["q"] and len(store) == 1
    del store["q"]
    assert "q" not in store


def test_trees_round_trip_and_are_untracked() -> None:
    tree = {"nodes": [{"id": 0, "children": [1], "reward": None}, {"id": 1, "text": "é {x}"}]}
    store = packed_trees()
    store["q"] = tree
    assert store["q"] == tree
    assert not gc.is_tracked(store._packed["q"])
    assert not gc.is_tracked(store._packed)


def test_engine_log_sequence_round_trips() -> None:
    from spex_graph.bench.archive import PackedSequence
    from spex_graph.sim.engine import RequestLog

    logs = [
        RequestLog("a", "policy", 1, 10, 5, 0.0, started_at=1.0, outcome="aborted"),
        RequestLog("b", "reward", 0, 20, 0, 0.5, generated_tokens=3, preempted=2),
    ]
    packed = PackedSequence(RequestLog, logs)
    assert list(packed) == logs and packed[1] == logs[1] and packed[:1] == logs[:1]
    assert len(packed) == 2
