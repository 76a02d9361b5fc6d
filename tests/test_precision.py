"""Weight precision (sim/precision.py): bytes held and read, compute rates, refusals; a
generation plan whose fitting candidates are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.plan.file import PlanError, load_plan
from prismsim.plan.search import run_plan
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.catalog import builtin_devices
from prismsim.sim.memory import device_memory
from prismsim.sim.precision import at_precision, check_precision, spec_at
from prismsim.workload import Task, Workload

# llama-tiny (hidden 128, 2 layers, 8 heads / 4 KV heads of 16, MLP 256, vocab 512, tied):
# embedding 512 x 128 = 65,536; a block q 16,384 + k 8,192 + v 8,192 + o 16,384 + gate, up,
# down 3 x 32,768 + 2 norms x 128 = 147,712; final norm 128: 361,088 parameters, 1,444,352
# bytes at fp32, and the 8 RoPE frequencies (32 bytes) its steps read too
LLAMA_TINY_BYTES = 4 * (512 * 128 + 2 * 147_712 + 128) + 8 * 4


def _one_step(memory_bytes: int, weight_bytes: int, flops: int = 0) -> Workload:
    return Workload({"model": "hand", "strategy": "single", "devices": 1},
                    [[Task("compute", "step", flops, memory_bytes=memory_bytes,
                           weight_bytes=weight_bytes)]], [], [weight_bytes], [])


LINK = LinkSpec(bandwidth_mbps=100)


def test_weights_held_at_each_precision_by_hand():
    wl = WorkloadCache().get("llama-tiny", "single", 1)
    assert wl.resident_bytes == [LLAMA_TINY_BYTES]
    assert at_precision(wl, "int8").resident_bytes == [LLAMA_TINY_BYTES // 4]
    assert at_precision(wl, "int4").resident_bytes == [LLAMA_TINY_BYTES // 8]
    assert at_precision(wl, "fp16").resident_bytes == [LLAMA_TINY_BYTES // 2]
    assert at_precision(wl, "fp32") is wl
    sharded = WorkloadCache().get("llama-tiny", "tensor_parallel", 2)
    # each device's shard at int8 is a quarter of its fp32 bytes
    assert at_precision(sharded, "int8").resident_bytes == [
        round(b / 4) for b in sharded.resident_bytes]


def test_a_forward_reads_each_weight_once():
    """One forward of vit-tiny on one device reads every weight in exactly one step: the
    weight bytes its steps read sum to the weights it holds (7,869,736: see
    tests/test_memory_trace.py)."""
    wl = WorkloadCache().get("vit-tiny", "single", 1)
    assert sum(t.weight_bytes for t in wl.tasks[0]) == wl.resident_bytes[0] == 7_869_736


def test_a_memory_bound_step_reads_fewer_bytes():
    """1,000 bytes moved, 800 of them weights, at 1 kB/s: fp32 1 s; int8 reads 200 of the
    weights' bytes (400 in all) 0.4 s; int4 100 (300) 0.3 s."""
    spec = DeviceSpec(peak_gflops=1e6, mem_bandwidth_gbytes_per_s=1e-6)
    wl = _one_step(1000, 800)
    for dtype, seconds in (("fp32", 1.0), ("int8", 0.4), ("int4", 0.3)):
        assert simulate(at_precision(wl, dtype), spec, LINK).latency_s == \
            pytest.approx(seconds)


def test_compute_at_the_catalogs_fp16_rate():
    """Orin Nano 15 W: 1,280 GFLOP/s FP32, 10,000 FP16 on its tensor cores, efficiency
    0.5. A TFLOP: fp32 1.5625 s, fp16 0.2 s; int4 weights widened to fp16 as well."""
    orin = builtin_devices()["jetson-orin-nano-8gb-15w"]
    wl = _one_step(0, 0, flops=10**12)
    for dtype, seconds in (("fp32", 1.5625), ("fp16", 0.2), ("int4", 0.2)):
        assert simulate(wl, spec_at(orin, dtype), LINK).latency_s == pytest.approx(seconds)
    pi = builtin_devices()["raspberry-pi-5"]  # no FP16 rate given: its FP32 one
    assert spec_at(pi, "fp16") is pi


def test_an_operator_table_device_refuses_other_precisions():
    wl = WorkloadCache().get("vit-tiny", "single", 1)
    table = builtin_devices()["cpu-2core-2.1ghz"]
    with pytest.raises(ValueError, match="operator table measured at fp32"):
        check_precision("int8", wl, [table])
    check_precision("fp32", wl, [table])  # as traced: fine
    out = CliRunner().invoke(main, ["simulate", "--model", "vit-tiny", "--strategy",
                                    "single", "--devices", "1", "--dtype", "int4"])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert out.output.strip().splitlines()[-1].startswith("Error: dtype int4:")


PLAN = """
name: tiny_llm
model: {name: llama-tiny}
accuracy:
  metric: perplexity
  source: by hand for the test
  entries:
    - {strategy: single, value: 10}
    - {strategy: single, dtype: int4, value: 30}
accuracy_floor: 20
latency_slo_ms: 1000
decode: {prompt_tokens: 16, generate: 3, tokens_per_s: 1}
dtypes: [fp32, int8, int4]
fits_required: true
devices:
  - {name: small, price_usd: 10, peak_gflops: 10, mem_bandwidth_gbytes_per_s: 1,
     memory_gib: 0.0005}
counts: [1]
strategies: [single]
links: [ethernet-1g]
"""


def test_a_generation_plan_ranks_only_what_fits_by_hand(tmp_path: Path):
    """The board holds 0.0005 GiB = 536,871 bytes. llama-tiny's weights: fp32 1,444,384
    bytes (does not fit); int8 361,096 and int4 180,548 (fit with the 74,880 bytes its
    fullest step holds). int4's perplexity (30) misses the floor of 20: int8 alone."""
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    result = run_plan(load_plan(path))
    table = result.table.set_index("dtype")
    # 1,444,384 + 74,880 - 536,871 bytes over
    assert table.loc["fp32", "fails"] == ("memory: device 0 (small) needs 1.4 MiB of its "
                                          "536,871 bytes (982,393 bytes over)")
    assert table.loc["int4", "fails"] == "accuracy"
    assert result.ranked["dtype"].tolist() == ["int8"]
    wl = WorkloadCache().get("llama-tiny", "single", 1, tokens=16, generate=3)
    fits = device_memory(at_precision(wl, "int8"), DeviceSpec(peak_gflops=10,
                                                               memory_gib=0.0005))
    assert fits[0].weights_bytes == LLAMA_TINY_BYTES // 4 and fits[0].fits
    assert (result.table["tokens_per_s"] > 1).all()


def test_fits_required_needs_every_capacity(tmp_path: Path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace(",\n     memory_gib: 0.0005}", "}"))
    with pytest.raises(PlanError, match=r"plan.yaml: devices\[0\]: small has no memory_gib"):
        load_plan(path)


SCENARIO = """
name: tiny_dtype
model: {name: llama-tiny}
strategies: [single]
devices: {count: [1], profile: PROFILE}
dtype: [fp32, int8]
"""


def test_a_scenario_refuses_precisions_its_operator_table_cannot_time(tmp_path: Path):
    from prismsim.scenario.load import load_scenario
    from prismsim.scenario.schema import ScenarioError

    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("PROFILE", "cpu-2core-2.1ghz"))
    with pytest.raises(ScenarioError, match=r"^s.yaml: dtype: int8 weights on cpu-2core"):
        load_scenario(path)
    path.write_text(SCENARIO.replace("PROFILE", "raspberry-pi-5"))
    points = load_scenario(path).grid()
    assert [p.dtype for p in points] == ["fp32", "int8"]
    fp32 = points[0]  # its key is the one it had before dtype existed
    import dataclasses
    import hashlib
    import json
    fields = dataclasses.asdict(fp32)
    for name in ("rendezvous", "split", "exchange", "host", "finetune", "generate",
                 "world", "dtype"):
        fields.pop(name)
    assert fp32.key() == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()
                                        ).hexdigest()[:16]


def test_the_llm_plan_loads_with_its_deployments():
    from prismsim.plan.search import deployments

    plan = load_plan("scenarios/plan_llm.yaml")
    # 3 boards x (single alone + 4 split configurations x 2 links) x 4 precisions
    assert len(deployments(plan)) == 3 * (1 + 4 * 2) * 4 == 108
    assert plan.file.decode is not None and plan.file.decode.tokens_per_s == 5
