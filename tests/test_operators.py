"""The shape-aware compute model: operators recorded by hand-known keys, the operator
table's interpolation worked out by hand, and the simulator using it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prismsim.cost.op_record import op_key, record_ops
from prismsim.cost.op_table import Bandwidth, OperatorTable, Product
from prismsim.executors.trace import trace_workload
from prismsim.profiling.block_probe import fit_sequence_costs
from prismsim.sim import DeviceSpec, LinkSpec, simulate


def test_operators_are_recorded_by_kind_and_size():
    x, w, b = torch.randn(5, 8), torch.randn(16, 8), torch.randn(16)
    _, moved, ops = record_ops(lambda: F.gelu(F.linear(x, w, b)), ())
    assert dict(ops)[("mm", 5, 8, 16)] == 1  # linear: addmm of [5, 8] x [8, 16]
    assert dict(ops)[("ew", "unary", 2 * 5 * 16 * 4)] == 1  # gelu reads and writes 320 B
    q, k = torch.randn(2, 3, 4), torch.randn(2, 4, 6)
    assert dict(record_ops(torch.bmm, (q, k))[2]) == {("bmm", 2, 3, 4, 6): 1}
    table = torch.randn(1000, 4)  # a lookup moves only its rows, not the 16 kB table
    ids = torch.tensor([[1, 2, 3]])
    assert dict(record_ops(F.embedding, (ids, table))[2]) == {("ew", "copy", 2 * 12 * 4): 1}
    assert moved > 0


def test_a_patch_convolution_is_the_product_it_is():
    x, w = torch.randn(2, 3, 8, 8), torch.randn(5, 3, 4, 4)  # 4x4 patches: 2 x 4 positions
    out = F.conv2d(x, w, stride=4)
    key = op_key(torch.ops.aten.convolution.default, (x, w), out)
    assert key == ("conv", 2 * 4, 3 * 4 * 4, 5)


def _table(scale: float = 1.0) -> OperatorTable:
    """mm measured at m in {1, 4}, k = n = 2: 1 us and 4 us; bmm a single point."""
    return OperatorTable(
        source="by hand", mm=(Product(dims=(1, 2, 2), seconds=1e-6 * scale),
                              Product(dims=(4, 2, 2), seconds=4e-6 * scale)),
        bmm=(Product(dims=(1, 1, 1, 1), seconds=2e-6),),
        ew={"copy": Bandwidth(fixed_s=1e-6, bytes_per_s=1e9),
            "unary": Bandwidth(fixed_s=2e-6, bytes_per_s=5e8)},
        view_s=1e-7)


def test_table_interpolates_by_hand():
    t = _table()
    # m = 2 is halfway in log2 between 1 and 4: log time halfway: sqrt(1 x 4) = 2 us
    assert t.op_s(("mm", 2, 2, 2)) == pytest.approx(2e-6)
    assert t.op_s(("mm", 1, 1, 1)) == pytest.approx(1e-6)  # smaller: the smallest's time
    assert t.op_s(("mm", 16, 2, 2)) == pytest.approx(16e-6)  # 4x the largest's FLOPs
    assert t.op_s(("mm", 8, 2, 4)) == pytest.approx(4e-6 * 2 * 2)
    assert t.op_s(("ew", "copy", 1000)) == pytest.approx(1e-6 + 1e-6)
    assert t.op_s(("ew", "softmax", 1000)) == pytest.approx(2e-6)  # unknown kind: copy's
    assert t.seconds(((("mm", 2, 2, 2), 3), (("view",), 10))) == pytest.approx(6e-6 + 1e-6)


def test_sequence_and_conv_factors_and_the_gauged_speed_by_hand():
    t = _table().model_copy(update={"sequence_factor": 1.25, "conv_factor": 3.0,
                                    "reference_s": 2e-3})
    assert t.op_s(("conv", 2, 2, 2)) == pytest.approx(3 * 2e-6)  # 3x the product it is
    # a step: (2 us product + 6 us conv) in sequence: x 1.25
    assert t.seconds(((("mm", 2, 2, 2), 1), (("conv", 2, 2, 2), 1))) == pytest.approx(10e-6)
    slower = t.at_speed(3e-3)  # the gauge's reference now takes 1.5x its time
    assert slower.op_s(("mm", 4, 2, 2)) == pytest.approx(6e-6)
    assert slower.op_s(("ew", "copy", 1000)) == pytest.approx(1.5 * (1e-6 + 1e-6))
    assert slower.reference_s == 3e-3
    with pytest.raises(ValueError, match="not gauged"):
        _table().at_speed(1e-3)
    # a cost per operator on top: 2 operators x 1 us; at 1.5x the time, 1.5 us each
    per_op = t.model_copy(update={"op_overhead_s": 1e-6})
    step = ((("mm", 2, 2, 2), 1), (("conv", 2, 2, 2), 1))
    assert per_op.seconds(step) == pytest.approx(10e-6 + 2e-6)
    assert per_op.at_speed(3e-3).seconds(step) == pytest.approx(1.5 * 12e-6)
    # with 4 views (0.1 us each alone): 1 us on top of each that computes, 0.25 us on each
    # view; a table without a view cost of its own charges views as the others
    viewed = (*step, (("view",), 4))
    views_apart = per_op.model_copy(update={"view_overhead_s": 0.25e-6})
    assert views_apart.seconds(viewed) == pytest.approx(12e-6 + 4 * (1.25 * 0.1e-6 + 0.25e-6))
    assert views_apart.at_speed(3e-3).seconds(viewed) == pytest.approx(
        1.5 * (12e-6 + 4 * (1.25 * 0.1e-6 + 0.25e-6)))
    assert per_op.seconds(viewed) == pytest.approx(12e-6 + 4 * (1.25 * 0.1e-6 + 1e-6))


def test_sequence_costs_are_fitted_over_probes_of_every_size():
    """Probes timed at exactly 1.2 x the table + 5 us an operator that computes + 1 us a
    view: all three come back, the one-token probes (their time mostly per-operator)
    weighing as much as the large ones. Where a view's cost would come out negative it
    is 0; where the per-operator cost would too, both are 0 and the factor the median
    ratio of timed to table."""
    probes = ((1e-3, 100, 200), (1e-2, 100, 200), (1e-4, 200, 400), (1e-4, 50, 500))
    exact = [(t, n, v, 1.2 * t + 5e-6 * n + 1e-6 * v) for t, n, v in probes]
    assert fit_sequence_costs(exact) == pytest.approx((1.2, 5e-6, 1e-6))
    cheaper = [(t, n, v, 1.2 * t + 5e-6 * n - 1e-7 * v) for t, n, v in probes]
    factor, per_op_s, per_view_s = fit_sequence_costs(cheaper)
    assert per_view_s == 0.0 and per_op_s > 0 and factor > 0
    inverted = [(1e-4, 100, 0, 1.0e-4), (1e-2, 10, 0, 1.3e-2), (1e-3, 50, 0, 1.2e-3)]
    assert fit_sequence_costs(inverted) == pytest.approx((1.2, 0.0, 0.0))


def test_the_simulator_times_steps_by_their_operators():
    """vit-tiny single, every operator by the table: the latency is the sum of the
    steps' operator times, whatever the FLOP rate says."""
    wl = trace_workload("vit-tiny", "single", 1)
    table = _table(scale=10.0)
    by_ops = sum(table.seconds(t.ops) for t in wl.tasks[0] if t.kind == "compute")
    device = DeviceSpec(peak_gflops=1.0, efficiency=1.0, operators=table)
    assert simulate(wl, device, LinkSpec(bandwidth_mbps=1)).latency_s == pytest.approx(by_ops)
    flops_only = DeviceSpec(peak_gflops=1.0, efficiency=1.0)
    assert simulate(wl, flops_only, LinkSpec(bandwidth_mbps=1)).latency_s == pytest.approx(
        sum(wl.flops_per_device()) / 1e9)
    assert not math.isclose(by_ops, sum(wl.flops_per_device()) / 1e9, rel_tol=0.1)


def test_a_table_without_the_fallback_kind_is_refused(tmp_path):
    from click.testing import CliRunner

    from prismsim.cli.main import main

    path = tmp_path / "board.yaml"
    path.write_text("devices:\n  board:\n    peak_gflops: 1\n    operators:\n"
                    "      source: x\n      mm: [{dims: [1, 2, 2], seconds: 1.0e-6}]\n"
                    "      bmm: [{dims: [1, 1, 1, 1], seconds: 1.0e-6}]\n"
                    "      ew: {gelu: {fixed_s: 0, bytes_per_s: 1.0e9}}\n      view_s: 0\n")
    result = CliRunner().invoke(main, ["simulate", "--model", "vit-tiny", "--catalog",
                                       str(path), "--device", "board"])
    assert result.exit_code == 2
    assert "devices.board.operators.ew" in result.output and "include 'copy'" in result.output


def test_a_catalog_device_names_its_operator_table_file(tmp_path):
    """A user catalog's device takes its table from a file beside it; the simulator
    then times a step by it (1 us for the one product), and says which model it used."""
    import yaml

    from prismsim.sim.catalog import CatalogError, load_catalog

    (tmp_path / "board-ops.yaml").write_text(yaml.safe_dump(_table().model_dump(mode="json")))
    (tmp_path / "cat.yaml").write_text(
        "devices:\n  board: {peak_gflops: 1, operators: board-ops.yaml}\n"
        "  plain: {peak_gflops: 2, efficiency: 0.5}\n")
    devices, _ = load_catalog(tmp_path / "cat.yaml")
    assert devices["board"].operators.op_s(("mm", 1, 2, 2)) == pytest.approx(1e-6)
    assert "operator table (by hand)" in devices["board"].compute_model()
    assert "constant efficiency, every shape at 0.5 x 2 GFLOP/s" in \
        devices["plain"].compute_model()
    (tmp_path / "bad.yaml").write_text("devices:\n  b: {peak_gflops: 1, operators: nope.yaml}\n")
    with pytest.raises(CatalogError, match=r"bad.yaml: devices.b.operators: .*nope.yaml"):
        load_catalog(tmp_path / "bad.yaml")


def _warm_table(cache_bytes: int | None) -> OperatorTable:
    """``_table`` with its products also timed warm: m in {1, 4} at 0.5 and 2 us, and
    warm terms: x 1.1, 0.5 us an operator that computes, nothing a view."""
    return _table().model_copy(update={
        "mm_warm": (Product(dims=(1, 2, 2), seconds=0.5e-6),
                    Product(dims=(4, 2, 2), seconds=2e-6)),
        "bmm_warm": (Product(dims=(1, 1, 1, 1), seconds=1e-6),),
        "warm_terms": (1.1, 0.5e-6, 0.0), "cache_bytes": cache_bytes, "reference_s": 2e-3})


def test_a_warm_step_by_hand():
    """A product (2 us cold, sqrt(0.5 x 2) = 1 us warm), a 1000-byte copy (2 us) and two
    views (0.1 us each): cold 4.2 us; warm 1.1 x 3.2 us + 2 x 0.5 us = 4.52 us. Only a
    table with warm terms and a cache the working set fits runs it warm."""
    t = _warm_table(cache_bytes=1000)
    step = ((("mm", 2, 2, 2), 1), (("ew", "copy", 1000), 1), (("view",), 2))
    assert t.seconds(step) == pytest.approx(4.2e-6)
    assert t.seconds(step, warm=True) == pytest.approx(4.52e-6)
    assert t.op_s(("bmm", 1, 1, 1, 1), warm=True) == pytest.approx(1e-6)
    assert t.op_s(("conv", 2, 2, 2), warm=True) == pytest.approx(2e-6)  # conv: cold
    assert t.at_speed(4e-3).seconds(step, warm=True) == pytest.approx(2 * 4.52e-6)
    assert t.fits_cache(1000) and not t.fits_cache(1001)
    assert not _warm_table(cache_bytes=None).fits_cache(1)
    assert not _table().model_copy(update={"cache_bytes": 1000}).fits_cache(1)
    assert _table().seconds(step, warm=True) == pytest.approx(4.2e-6)  # nothing warm


def test_decode_steps_run_warm_where_the_working_set_fits_the_cache():
    """llama-tiny generating 3 tokens on one device: where its weights, KV cache and
    largest step's live bytes fit the table's cache, the steps of tokens 1 and 2 run
    warm and the prefill (up to t0.head) cold; a byte less and every step is cold."""
    from prismsim.sim.ops import runs_warm
    wl = trace_workload("llama-tiny", "single", 1, tokens=16, generate=3)
    steps = [t for t in wl.tasks[0] if t.kind == "compute"]
    working = wl.resident_bytes[0] + wl.kv_cache_bytes[0] + max(t.live_bytes for t in steps)
    warm_labels = {t.label for t in steps if ".t1." in f".{t.label}" or ".t2." in f".{t.label}"}
    assert {"t1.embed", "L0.t1.block", "t2.head"} <= warm_labels and "t0.head" not in warm_labels
    for cache, warm in ((working, True), (working - 1, False)):
        device = DeviceSpec(peak_gflops=1.0, efficiency=1.0, operators=_warm_table(cache))
        assert runs_warm(wl, 0, device) is warm
        latency_s = simulate(wl, device, LinkSpec(bandwidth_mbps=1)).latency_s
        assert latency_s == pytest.approx(sum(
            device.operators.seconds(t.ops, warm and t.label in warm_labels) for t in steps))
    table = _warm_table(1)
    decode = [t.ops for t in steps if t.label in warm_labels]
    assert not math.isclose(sum(table.seconds(ops, True) for ops in decode),
                            sum(table.seconds(ops) for ops in decode), rel_tol=0.05)


def test_the_last_level_cache_is_read_from_sysfs(tmp_path):
    from prismsim.profiling.operators import cache_bytes
    for name, level, size in (("index0", 1, "48K"), ("index2", 2, "1024K"),
                              ("index3", 3, "32768K"), ("index9", 4, "junk")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "level").write_text(f"{level}\n")
        (tmp_path / name / "size").write_text(f"{size}\n")
    assert cache_bytes(tmp_path) == 32 << 20
    assert cache_bytes(tmp_path / "none") is None


def test_no_warm_terms_where_no_probe_fits_the_cache():
    from prismsim.profiling.block_probe import warm_sequence_costs
    assert warm_sequence_costs(_warm_table(cache_bytes=1 << 10)) is None
