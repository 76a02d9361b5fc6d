"""Workloads: messages and waits, wire sizes, the disk cache."""

import json
import os

import pytest
import torch

from prismsim.cost.units import wire_bytes
from prismsim.executors import trace_cache
from prismsim.executors.memory import run_in_memory
from prismsim.executors.trace import Recorder, TracingContext, trace_workload
from prismsim.executors.trace_cache import WorkloadCache, workload_key
from prismsim.strategies.program import Expect, Post, Recv, Tag, send
from prismsim.workload import FORMAT, Workload


def test_wire_bytes_by_hand():
    assert wire_bytes((1, 10, 768), "fp32") == 30_720
    assert wire_bytes((1, 10, 768), "fp16") == 15_360
    assert wire_bytes((1, 10, 768), "int8") == 7_680 + 10 * 4  # one fp32 scale per row
    with pytest.raises(ValueError):
        wire_bytes((1,), "bf8")


def test_voltage_task_graph_by_hand():
    """vit-tiny (197 tokens, d = 192, 4 blocks) on 2 devices: the master sends device 1 its
    98 rows and the master's 99 rows; after blocks 0-2 each sends its rows to the other."""
    wl = trace_workload("vit-tiny", "voltage", 2)
    tags = sorted((m.src, m.dst, m.tag, m.layer, m.shape[1]) for m in wl.messages)
    assert tags == sorted([(0, (1,), "input.rows", None, 98),
                           (0, (1,), "input.from0", None, 99)] + [
        (d, (1 - d,), f"L{layer}.rows", layer, 99 - d) for layer in (1, 2, 3) for d in (0, 1)])
    assert not any(m.broadcast for m in wl.messages)  # exchange="p2p": unicast copies
    wl_b = trace_workload("vit-tiny", "voltage", 2, exchange="broadcast")
    assert all(m.broadcast for m in wl_b.messages if m.layer is not None)  # one to all
    assert wl.messages[0].payload_bytes == 98 * 192 * 4
    # compute steps carry their block: the embedding none, block l's step l
    assert [(t.label, t.layer) for t in wl.tasks[0] if t.kind == "compute"][:2] == [
        ("embed", None), ("L0.block", 0)]
    kinds = [t.kind for t in wl.tasks[1]]
    # device 1: wait for the input, then per block: compute, send, wait; finally the last block
    assert kinds == ["recv"] + ["compute", "send", "recv"] * 3 + ["compute"]
    assert wl.tasks[1][0].messages == (0, 1)
    assert wl.bytes_sent_per_device() == [(98 + 99 + 3 * 99) * 192 * 4, 3 * 98 * 192 * 4]


def test_json_round_trip():
    wl = trace_workload("gpt2-tiny", "prism", 3, cr=4)
    again = Workload.from_json(wl.to_json())
    assert again.tasks == wl.tasks and again.messages == wl.messages and again.meta == wl.meta


def test_cache_hit_reads_the_file_and_is_keyed(tmp_path, monkeypatch):
    cache = WorkloadCache(tmp_path)
    cold = cache.get("bert-tiny", "prism", 2, cr=4)

    def traced_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached workload was traced again")

    monkeypatch.setattr(trace_cache, "trace_workload", traced_again)
    assert WorkloadCache(tmp_path).get("bert-tiny", "prism", 2, cr=4) is cold  # in memory
    monkeypatch.setattr(WorkloadCache, "_memory", type(WorkloadCache._memory)())
    hot = cache.get("bert-tiny", "prism", 2, cr=4)  # a process that has not got it: the file
    assert hot is not cold and hot.tasks == cold.tasks and hot.messages == cold.messages
    assert len(os.listdir(tmp_path / "workloads")) == 1
    key = workload_key("bert-tiny", "prism", 2, {"cr": 4}, tokens=None, batch=1, wire="fp32",
                       weights=None)
    for other in [workload_key("bert-tiny", "prism", 2, {"cr": 8}, tokens=None, batch=1,
                               wire="fp32", weights=None),
                  workload_key("bert-tiny", "prism", 2, {"cr": 4}, tokens=None, batch=1,
                               wire="fp16", weights=None),
                  workload_key("bert-tiny", "prism", 3, {"cr": 4}, tokens=None, batch=2,
                               wire="fp32", weights=None)]:
        assert other != key


def test_damaged_cache_file_is_retraced(tmp_path, monkeypatch):
    cache = WorkloadCache(tmp_path)
    good = cache.get("bert-tiny", "voltage", 2)
    (path,) = (tmp_path / "workloads").iterdir()
    path.write_text(path.read_text()[:100])  # truncated
    monkeypatch.setattr(WorkloadCache, "_memory", type(WorkloadCache._memory)())
    assert cache.get("bert-tiny", "voltage", 2).tasks == good.tasks


def test_files_of_another_format_are_refused_and_retraced(tmp_path):
    wl = trace_workload("vit-tiny", "voltage", 2)
    raw = json.loads(wl.to_json())
    assert raw.pop("format") == FORMAT == 9
    for other in ({}, {"format": 3}, {"format": FORMAT + 1}):  # no "format": format 1
        with pytest.raises(ValueError, match="trace it again"):
            Workload.from_json(json.dumps({**raw, **other}))
    cache = WorkloadCache(tmp_path)
    good = cache.get("vit-tiny", "voltage", 2)
    (path,) = (tmp_path / "workloads").iterdir()
    path.write_text(json.dumps({**raw, "format": 3}))  # written by an older prismsim
    assert cache.get("vit-tiny", "voltage", 2).tasks == good.tasks


def test_a_posted_receive_never_taken_is_an_error():
    def sender(ctx):
        yield send(0, (1,), Tag("a"), torch.ones(2))

    def receiver(ctx):
        yield Post((Expect(0, Tag("a"), (2,)), Expect(0, Tag("b"), (2,))))
        yield Recv((Expect(0, Tag("a"), (2,)),))

    ctxs = [TracingContext(p, (1, 1), 1, 2) for p in range(2)]
    with pytest.raises(ValueError, match=r"never took: \[\(0, 'b'\)\]"):
        run_in_memory([sender(ctxs[0]), receiver(ctxs[1])], Recorder(ctxs, "fp32"))
