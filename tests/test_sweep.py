"""Sweeps: grid, resume after an interruption, byte-identical reruns, bad scenarios."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.scenario import load_scenario
from prismsim.sweep.run import run_sweep

TINY = Path("scenarios/tiny_vit.yaml").read_text()  # 21 points, latency only


def _scenario(tmp_path: Path, text: str = TINY, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_by_hand(tmp_path):
    s = load_scenario(_scenario(tmp_path))
    # single once, voltage at P=2,3, prism at P=2,3 x 2 CRs: 7 configurations x 3 bandwidths
    assert len(s.grid()) == (1 + 2 + 4) * 3
    assert {p.latency_ms for p in s.grid()} == {1.0}


class StopError(Exception):
    pass


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    s = load_scenario(_scenario(tmp_path))
    whole = run_sweep(s, tmp_path / "whole")
    monkeypatch.setattr("prismsim.sweep.results.FLUSH_ROWS", 5)  # rows go out 5 at a time
    seen = []

    def kill_after_five(label, n=1):
        seen.extend([label] * n)
        if len(seen) == 5 + 7:  # 7 workloads traced, then 5 rows written
            raise StopError

    with pytest.raises(StopError):
        run_sweep(s, tmp_path / "cut", progress=kill_after_five)
    assert len(pd.read_csv(tmp_path / "cut" / "results.csv")) == 5
    with open(tmp_path / "cut" / "results.csv", "a") as f:
        f.write("3f2a,tiny,vit-t")  # a row torn by the kill
    resumed = run_sweep(s, tmp_path / "cut")
    pd.testing.assert_frame_equal(resumed, whole)
    assert resumed["point_id"].is_unique
    first = (tmp_path / "whole" / "results.csv").read_bytes()
    assert (tmp_path / "cut" / "results.csv").read_bytes() == first
    run_sweep(s, tmp_path / "whole")  # a second identical run
    assert (tmp_path / "whole" / "results.csv").read_bytes() == first
    assert (tmp_path / "whole" / "results.parquet").exists()


def test_vit_200mbps_reduced(tmp_path):
    """The shipped scenario with 8 test images and one bandwidth: the paper's ordering
    at 200 Mbit/s (voltage slower than one device, prism faster)."""
    text = Path("scenarios/vit_200mbps.yaml").read_text()
    text = text.replace("limit: 1000", "limit: 8").replace(
        "[50, 100, 200, 400, 800, 1000]", "[200]").replace(
        "output: results/vit_200mbps", f"output: {tmp_path / 'out'}")
    df = run_sweep(load_scenario(_scenario(tmp_path, text)))
    assert len(df) == 1 + 2 + 2 * 3
    single = df[df.strategy == "single"].latency_s.item()
    assert (df[df.strategy == "voltage"].latency_s > single).all()
    assert (df[df.strategy == "prism"].latency_s < single).all()
    assert df.accuracy.notna().all() and (df.metric == "accuracy").all()
    exact = df[df.strategy.isin(["single", "voltage"])]
    assert exact.accuracy.nunique() == 1 and (exact.top1_agreement == 1.0).all()
    # every strategy here keeps every weight on every device: the fullest device holds
    # all of ViT-B/16's (86.6 M parameters, fp32) and more; the paper's CPU has no
    # capacity in the catalog, so whether it fits is not known
    assert (df.memory_peak_bytes > 4 * 86_000_000).all() and df.fits.isna().all()


BAD = {
    "unknown key": (TINY + "colour: red\n", "s.yaml: colour: Extra inputs are not permitted"),
    "wrong type": (TINY.replace("count: [1, 2, 3]", "count: many"), "s.yaml: devices.count"),
    "empty grid": (TINY.replace("[single, voltage, prism]", "[single]").replace(
        "[1, 2, 3]", "[2, 3]"), "s.yaml: empty grid"),
    "negative bandwidth": (TINY.replace("[50, 200, 1000]", "[50, 200, -5]"),
                           "s.yaml: network.bandwidth_mbps[2]: Input should be greater than 0, "
                           "got -5"),
    "unknown model": (TINY.replace("vit-tiny", "vit-huge"), "s.yaml: model.name: unknown model"),
    "unknown device": (TINY.replace("count: [1, 2, 3]", "count: [1, 2, 3], profile: toaster"),
                       "s.yaml: devices.profile: unknown device 'toaster'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scenarios_are_one_clear_line(tmp_path, case):
    text, message = BAD[case]
    result = CliRunner().invoke(main, ["check", str(_scenario(tmp_path, text))])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_sweep_and_plot_commands(tmp_path):
    text = TINY + f"output: {tmp_path / 'out'}\ntimeline: {{strategy: prism, devices: 3}}\n"
    path = _scenario(tmp_path, text)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0 and "21 points" in result.output
    result = CliRunner().invoke(main, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert {"results.csv", "results.parquet", "scenario.yaml", "timeline.json",
            "latency_vs_bandwidth.png", "pareto.svg", "timeline.png"} <= {
        p.name for p in out.iterdir()}
    (out / "pareto.png").unlink()
    result = CliRunner().invoke(main, ["plot", str(out)])
    assert result.exit_code == 0 and (out / "pareto.png").exists()


def test_dask_backend_with_a_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    s = load_scenario(_scenario(tmp_path))
    local = run_sweep(s, tmp_path / "local")
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
    dask = run_sweep(s, tmp_path / "dask", backend="dask")
    pd.testing.assert_frame_equal(dask, local)


def test_a_point_is_reported_only_once_its_row_is_on_disk(tmp_path, monkeypatch):
    """Rows are written in batches (here of 4): at every report the file already holds
    every row reported so far (the 7 workloads come first and write nothing)."""
    monkeypatch.setattr("prismsim.sweep.results.FLUSH_ROWS", 4)
    monkeypatch.setattr("prismsim.sweep.results.FLUSH_EVERY_S", 3600.0)
    s = load_scenario(_scenario(tmp_path))
    csv = tmp_path / "out" / "results.csv"
    reported, batches = [], []

    def check(label, n=1):
        if n == 0:  # an item started
            return
        reported.append(n)
        if len(reported) > 7:  # a batch of rows
            batches.append(n)
            on_disk = len(csv.read_text().splitlines()) - 1  # less the header
            assert on_disk == sum(reported) - 7
    run_sweep(s, tmp_path / "out", progress=check)
    assert batches == [4, 4, 4, 4, 4, 1]  # 21 points


def test_exchange_axis(tmp_path):
    """exchange: [p2p, ring] doubles voltage and prism (not single): (1 + 2 x 2 + 4 x 2)
    configurations x 3 bandwidths; the ring pays 2(P-1) steps where p2p sends once."""
    s = load_scenario(_scenario(tmp_path, TINY + "exchange: [p2p, ring]\n"))
    assert len(s.grid()) == (1 + 2 * 2 + 4 * 2) * 3
    df = run_sweep(s, tmp_path / "out")
    assert set(df.loc[df.strategy == "single", "exchange"]) == {"p2p"}
    v = df[(df.strategy == "voltage") & (df.devices == 3)].set_index(
        ["exchange", "bandwidth_mbps"]).latency_s
    assert (v.loc["ring"] != v.loc["p2p"]).all()
    plain = load_scenario(_scenario(tmp_path, TINY, "plain.yaml"))
    p2p_keys = {p.key() for p in s.grid() if p.exchange == "p2p"}
    assert p2p_keys == {p.key() for p in plain.grid()}  # keys of p2p points unchanged


def test_a_shared_host_slows_the_devices_and_keys_its_points(tmp_path):
    """host: {cores: 1}: the devices of a point are processes sharing one core, so a
    distributed point is never faster than on their own hardware, and slower where
    their compute overlaps (at P = 3 on the faster links; at P = 2 this tiny model's
    1 ms latency staggers the two devices so that they never compute at once); single
    is one process either way."""
    shared = load_scenario(_scenario(tmp_path, TINY + "host: {cores: 1}\n", "h.yaml"))
    plain = load_scenario(_scenario(tmp_path, TINY))
    assert not {p.key() for p in shared.grid()} & {p.key() for p in plain.grid()}
    a = run_sweep(shared, tmp_path / "a").set_index(["strategy", "devices", "cr",
                                                      "bandwidth_mbps"])
    b = run_sweep(plain, tmp_path / "b").set_index(["strategy", "devices", "cr",
                                                     "bandwidth_mbps"])
    assert (a.loc["single"].latency_s == b.loc["single"].latency_s).all()
    slower = a.loc["voltage"].latency_s - b.loc["voltage"].latency_s
    assert (slower > -1e-12).all()
    assert (slower.loc[3].loc[[(float("nan"), 200.0), (float("nan"), 1000.0)]] > 0).all()
    assert set(a.host_cores) == {1}


def test_exact_strategies_are_evaluated_once_as_the_check(tmp_path, monkeypatch):
    """Voltage is exact: of voltage at P = 2 and 3 only P = 2 is evaluated (the check, on
    at most 32 examples), both take single's metrics and say so; prism is evaluated at
    each P and CR."""
    import prismsim.sweep.compute as compute

    evaluated = []
    real = compute.accuracy

    def counting(need):
        evaluated.append((need.strategy, need.devices, dict(need.options).get("cr")))
        return real(need)

    monkeypatch.setattr(compute, "accuracy", counting)
    text = TINY.replace("network: {bandwidth_mbps: [50, 200, 1000], latency_ms: 1}",
                        "network: {bandwidth_mbps: [200], latency_ms: 1}\n"
                        "dataset: {name: digits, limit: 8}")
    df = run_sweep(load_scenario(_scenario(tmp_path, text)), tmp_path / "out")
    assert sorted(evaluated) == sorted([("single", 1, None), ("voltage", 2, None),
                                        ("prism", 2, 2.0), ("prism", 2, 4.0),
                                        ("prism", 3, 2.0), ("prism", 3, 4.0)])
    rows = df.set_index(["strategy", "devices"])
    single = rows.loc[("single", 1)]
    assert rows.loc[("voltage", 2)].accuracy == single.accuracy  # the check: exact
    borrowed = rows.loc[("voltage", 3)]
    assert borrowed.accuracy == single.accuracy
    assert borrowed.accuracy_source.startswith(
        "voltage P=3 is exact: single's metrics, checked by evaluating voltage P=2 "
        "on the first 8 examples (top-1 agreement 1.0000")


def test_overlapping_accuracy_intervals_are_named():
    """970 / 1000 twice (Wilson [0.9575, 0.9789]) overlap; 429 / 1000 ([0.3987, 0.4599])
    overlaps neither; 955 / 1000 ([0.9403, 0.9662]) overlaps both 0.970s; voltage (exact:
    single's metrics by proof) is paired with nothing."""
    from prismsim.metrics import wilson_interval
    from prismsim.sweep.summary import indistinguishable

    rows = []
    for strategy, devices, segments, k in (("single", 1, None, 970), ("voltage", 2, None, 970),
                                           ("prism", 2, 20, 970), ("prism", 3, 10, 429),
                                           ("prism", 2, 30, 955)):
        lo, hi = wilson_interval(k, 1000)
        rows.append({"strategy": strategy, "devices": devices, "cr": None,
                     "segments": segments, "accuracy": k / 1000,
                     "accuracy_ci95_low": lo, "accuracy_ci95_high": hi})
    assert wilson_interval(955, 1000) == pytest.approx((0.9403, 0.9662), abs=1e-4)
    assert indistinguishable(pd.DataFrame(rows)) == [
        "single and prism P=2 L=20", "single and prism P=2 L=30",
        "prism P=2 L=20 and prism P=2 L=30"]


SLOW_TWICE = """
catalog:
  devices:
    steady-half:  # every step at twice the mean time of the 2-core profile's FLOP rate
      peak_gflops: 134.4
      efficiency: 1.0
      variability: {source: by hand, slow: [[0.5, 2.0]]}
"""


def test_samples_add_the_tail_columns_and_leave_the_mean_times_alone(tmp_path):
    """One device whose every step takes twice its mean time (a slow factor that is 2
    always): each sampled inference of single is twice the mean-time replay; without
    samples: the table has no tail columns and is what it was."""
    text = TINY.replace("devices: {count: [1, 2, 3]}",
                        "devices: {count: [1, 2, 3], profile: steady-half}") + SLOW_TWICE
    assert text != TINY + SLOW_TWICE
    plain = run_sweep(load_scenario(_scenario(tmp_path, text)), tmp_path / "plain")
    assert "latency_p99_s" not in plain
    sampled_text = text + "samples: {n: 4, seed: 1}\n"
    sampled = run_sweep(load_scenario(_scenario(tmp_path, sampled_text, "s2.yaml")),
                        tmp_path / "sampled")
    assert list(sampled.columns[-4:]) == ["latency_mean_sampled_s", "latency_p50_s",
                                          "latency_p95_s", "latency_p99_s"]
    pd.testing.assert_frame_equal(sampled[plain.columns].drop(columns="scenario"),
                                  plain.drop(columns="scenario"))
    single = sampled[sampled["strategy"] == "single"]
    for column in ("latency_mean_sampled_s", "latency_p50_s", "latency_p99_s"):
        assert single[column].to_numpy() == pytest.approx(2 * single["latency_s"].to_numpy())
    distributed = sampled[sampled["devices"] > 1]
    assert (distributed["latency_p99_s"] > distributed["latency_s"]).all()
