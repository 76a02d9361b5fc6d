"""Capacity planning on a tiny catalog whose answer is worked out by hand below.

Two device kinds, one 80 Mbit/s switched link (10 MB/s, no latency), and hand-made
workloads (GFLOP per device, then device 1 sends one message to device 0):

| program        | GFLOP per device | message |
|----------------|------------------|---------|
| single         | 12               | -       |
| voltage P=2    | 8                | 4 MB    |
| prism P=2 CR=c | 7                | 4/c MB  |

slow: 10 GFLOP/s, $50, idle 1 W, compute 3 W, tx/rx 2 W.
fast: 40 GFLOP/s, $200, idle 2 W, compute 10 W, tx/rx 4 W.
Energy of a device = idle x latency + (compute - idle) x compute time
                     + (tx - idle) x tx time + (rx - idle) x rx time.

| config           | latency s          | energy J                          | acc  |
|------------------|--------------------|-----------------------------------|------|
| slow single      | 12/10 = 1.2        | 1.2 + 2 x 1.2 = 3.6               | 0.90 |
| slow voltage     | 0.8 + 0.4 = 1.2    | 2 x (1.2 + 2 x 0.8 + 0.4) = 6.4   | 0.90 |
| slow prism CR=2  | 0.7 + 0.2 = 0.9    | 2 x (0.9 + 2 x 0.7 + 0.2) = 5.0   | 0.85 |
| slow prism CR=4  | 0.7 + 0.1 = 0.8    | 2 x (0.8 + 2 x 0.7 + 0.1) = 4.6   | 0.70 |
| fast single      | 12/40 = 0.3        | 2 x 0.3 + 8 x 0.3 = 3.0           | 0.90 |
| fast voltage     | 0.2 + 0.4 = 0.6    | 2 x (1.2 + 8 x 0.2 + 2 x 0.4) = 7.2 | 0.90 |
| fast prism CR=2  | 0.175 + 0.2 = 0.375 | 2 x (0.75 + 1.4 + 2 x 0.2) = 5.1 | 0.85 |
| fast prism CR=4  | 0.175 + 0.1 = 0.275 | 2 x (0.55 + 1.4 + 2 x 0.1) = 4.3 | 0.70 |

With accuracy >= 0.8 and latency <= 1000 ms: slow single and slow voltage miss the SLO,
both CR=4 miss the floor. The rest by cost, then energy: slow prism CR=2 ($100), fast
single ($200), fast prism CR=2 ($400, 5.1 J), fast voltage ($400, 7.2 J). Front over
(cost, latency, energy): slow prism CR=2 (cheapest) and fast single (beats both $400
ones on all three).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.configuration import Configuration
from prismsim.pareto import front_rows
from prismsim.plan.file import load_plan
from prismsim.plan.search import deployments, judge, run_plan
from prismsim.workload import Message, Task, Workload

MB = 1_000_000
GFLOP = 10**9

PLAN = """\
name: tiny
model: {name: vit-tiny}
accuracy:
  source: hand-picked for the test
  entries:
    - {strategy: single, value: 0.90}
    - {strategy: voltage, value: 0.90}
    - {strategy: prism, devices: 2, cr: 2, value: 0.85}
    - {strategy: prism, cr: 2, value: 0.10}      # any P: the P=2 entry above wins
    - {strategy: prism, devices: 2, cr: 4, value: 0.70}
accuracy_floor: 0.8
latency_slo_ms: 1000
devices:
  - {name: slow, price_usd: 50, peak_gflops: 10, efficiency: 1,
     idle_w: 1, compute_w: 3, tx_w: 2, rx_w: 2}
  - {name: fast, price_usd: 200, peak_gflops: 40, efficiency: 1,
     idle_w: 2, compute_w: 10, tx_w: 4, rx_w: 4}
counts: [1, 2]
strategies: [single, voltage, prism]
prism: {cr: [2, 4]}
links:
  - {name: lan, medium: switched, bandwidth_mbps: 80}
"""


def _two_device(gflop: int, n_bytes: int) -> Workload:
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m", shape=(n_bytes // 4,),
                  payload_bytes=n_bytes)
    return Workload(meta={}, messages=[msg], tasks=[
        [Task("compute", "c", gflop * GFLOP), Task("recv", "r", 0, (0,))],
        [Task("compute", "c", gflop * GFLOP), Task("send", "m", 0, (0,))]])


def toy_workload(c: Configuration) -> Workload:
    assert c.devices == (1 if c.strategy == "single" else 2)
    if c.strategy == "single":
        return Workload(meta={}, tasks=[[Task("compute", "c", 12 * GFLOP)]])
    if c.strategy == "voltage":
        return _two_device(8, 4 * MB)
    return _two_device(7, int(4 * MB / c.cr))


def _plan_file(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def _key(row) -> tuple:
    cr = None if pd.isna(row["cr"]) else row["cr"]
    return (row["device"], row["strategy"], cr)


def test_tiny_plan_ranked_by_cost_then_energy(tmp_path):
    result = run_plan(load_plan(_plan_file(tmp_path)), workload=toy_workload)
    table = result.table
    assert len(table) == 8  # 2 devices x (single + voltage + prism at 2 CRs), one link
    ranked = result.ranked
    assert [_key(r) for _, r in ranked.iterrows()] == [
        ("slow", "prism", 2.0), ("fast", "single", None), ("fast", "prism", 2.0),
        ("fast", "voltage", None)]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked["cost_usd"].tolist() == [100, 200, 400, 400]
    assert ranked["latency_s"].tolist() == pytest.approx([0.9, 0.3, 0.375, 0.6])
    assert ranked["energy_j"].tolist() == pytest.approx([5.0, 3.0, 5.1, 7.2])
    assert ranked["accuracy"].tolist() == [0.85, 0.90, 0.85, 0.90]
    assert ranked["link"].tolist() == ["lan", "", "lan", "lan"]  # one device: no link


def test_tiny_plan_infeasible_rows_say_why(tmp_path):
    table = run_plan(load_plan(_plan_file(tmp_path)), workload=toy_workload).table
    bad = table[~table["feasible"]]
    # after the feasible ones, by cost then energy: $50 3.6 J, $100 4.6 J, $100 6.4 J, $400
    assert [_key(r) for _, r in bad.iterrows()] == [
        ("slow", "single", None), ("slow", "prism", 4.0), ("slow", "voltage", None),
        ("fast", "prism", 4.0)]
    assert bad["fails"].tolist() == ["latency", "accuracy", "latency", "accuracy"]
    assert bad["latency_s"].tolist() == pytest.approx([1.2, 0.8, 1.2, 0.275])
    assert bad["energy_j"].tolist() == pytest.approx([3.6, 4.6, 6.4, 4.3])
    assert bad["rank"].isna().all() and not bad["pareto"].any()


def test_tiny_plan_pareto_front(tmp_path):
    front = run_plan(load_plan(_plan_file(tmp_path)), workload=toy_workload).front
    assert [_key(r) for _, r in front.iterrows()] == [("slow", "prism", 2.0),
                                                      ("fast", "single", None)]


def test_pareto_rows_over_three_columns():
    df = pd.DataFrame({"cost_usd": [100, 100, 200, 200, 300, 300],
                       "latency_s": [0.9, 0.9, 0.5, 0.6, 0.5, 0.4],
                       "energy_j": [5.0, 5.0, 4.0, 3.0, 4.0, 9.0]})
    # 0 and 1 are equal and cheapest: both stay. 2 and 3 trade latency for energy: both
    # stay. 4 is beaten by 2 (cheaper, as fast, as frugal). 5 is the fastest: stays.
    assert front_rows(df, minimize=("cost_usd", "latency_s", "energy_j")) == [0, 1, 2, 3, 5]
    # on cost and latency alone 3 is beaten by 2 (same cost, faster)
    assert front_rows(df, minimize=("cost_usd", "latency_s")) == [0, 1, 2, 5]


def test_lower_is_better_metric_makes_the_floor_a_ceiling():
    df = pd.DataFrame({"device": ["a", "b"], "count": [1, 1], "strategy": ["single"] * 2,
                       "cr": [math.nan] * 2, "link": ["", ""], "unit_price_usd": [10, 20],
                       "cost_usd": [10, 20], "latency_s": [0.1, 0.1], "energy_j": [1.0, 1.0],
                       "bytes_on_air": [0, 0], "metric": ["bits_per_byte"] * 2,
                       "accuracy": [2.6, 2.4], "accuracy_source": ["hand"] * 2})
    out = judge(df, accuracy_floor=2.5, latency_slo_s=0.2)
    assert out["device"].tolist() == ["b", "a"]  # b (2.4 bits/byte <= 2.5) first
    assert out["feasible"].tolist() == [True, False]
    assert out["fails"].tolist() == ["", "accuracy"]


@pytest.mark.parametrize(("edit", "message"), [
    (("price_usd: 200", "price_usd: -5"),
     "plan.yaml: devices[1].price_usd: Input should be greater than or equal to 0, got -5"),
    (("latency_slo_ms: 1000", "latency_slo: 1000"),
     "plan.yaml: latency_slo_ms: Field required; latency_slo: Extra inputs are not "
     "permitted"),
    (("bandwidth_mbps: 80", "bandwidth_mbps: fast"),
     "plan.yaml: links[0].bandwidth_mbps: Input should be a valid number"),
    (("strategies: [single, voltage, prism]", "strategies: [single, voltge, prism]"),
     "plan.yaml: strategies[1]: unknown strategy 'voltge'"),
    (("prism: {cr: [2, 4]}", "prism: {cr: [2, 0.5]}"),
     "plan.yaml: prism.cr[1]: Input should be greater than or equal to 1, got 0.5"),
    (("prism: {cr: [2, 4]}", ""), "plan.yaml: prism: give the compression rates"),
    (("model: {name: vit-tiny}", "model: {name: vit-tiny}\ndataset: {name: mnist-5k}"),
     "plan.yaml: give either dataset: (accuracy is evaluated) or accuracy:"),
])
def test_bad_plan_names_file_and_key(tmp_path, edit, message):
    path = _plan_file(tmp_path, PLAN.replace(*edit))
    result = CliRunner().invoke(main, ["plan", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unknown_catalog_profile_lists_the_known_ones(tmp_path):
    text = PLAN.replace("counts:", "  - {profile: jetson-nano-9gb, price_usd: 99}\ncounts:")
    result = CliRunner().invoke(main, ["plan", str(_plan_file(tmp_path, text))])
    assert result.exit_code == 2
    assert "plan.yaml: devices[2].profile: unknown device 'jetson-nano-9gb'" in result.output
    assert "jetson-nano-4gb" in result.output


def test_missing_accuracy_entry_is_named(tmp_path):
    text = PLAN.replace("counts: [1, 2]", "counts: [1, 2, 3]")
    with pytest.raises(ValueError, match=r"plan.yaml: accuracy.entries: no value for "
                                         r"prism P=3 CR=4"):
        run_plan(load_plan(_plan_file(tmp_path, text)), workload=lambda c: None)


# The CLI traces vit-tiny (4 blocks, 197 tokens) for single and voltage P=2 on a Raspberry
# Pi 5 from the catalog and the inline "slow" board: 2 devices x (single + voltage) = 4.
CLI_PLAN = """\
name: cli
model: {name: vit-tiny}
accuracy:
  source: hand-picked for the test
  entries: [{strategy: single, value: 0.9}, {strategy: voltage, value: 0.9}]
accuracy_floor: 0.8
latency_slo_ms: 10000
devices:
  - {profile: raspberry-pi-5, price_usd: 80}
  - {name: slow, price_usd: 50, peak_gflops: 10, efficiency: 1}
counts: [1, 2]
strategies: [single, voltage]
links: [ethernet-1g]
"""


def test_cli_writes_tables_and_a_deterministic_plot(tmp_path):
    path = _plan_file(tmp_path, CLI_PLAN)
    runs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        result = CliRunner().invoke(main, ["plan", str(path), "-o", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(out)
    assert "4 of 4 configurations meet" in result.output
    assert "Pareto front over cost, latency and energy:" in result.output
    a, b = runs
    for name in ("plan.csv", "pareto.csv", "plan.png", "plan.svg"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    table = pd.read_csv(a / "plan.csv")
    # cheapest first: slow alone $50, Pi alone $80, 2 slow $100, 2 Pis $160
    assert list(zip(table["device"], table["count"], strict=True)) == [
        ("slow", 1), ("raspberry-pi-5", 1), ("slow", 2), ("raspberry-pi-5", 2)]
    assert table["cost_usd"].tolist() == [50, 80, 100, 160]


def test_example_plan_validates():
    plan = load_plan("scenarios/plan_vit.yaml")
    # 3 boards x (single + P in {2, 3} x (voltage + prism at 4 CRs) x 2 links) = 3 x 21
    assert len(deployments(plan)) == 63
    assert [c.price_usd for c in plan.devices] == [80, 99, 249]


def test_example_load_plan_validates():
    plan = load_plan("scenarios/plan_vit_load.yaml")
    assert len(deployments(plan)) == 4 * 63  # plan_vit's deployments in 1 to 4 groups
    assert plan.file.offered_load is not None and plan.file.offered_load.rate_per_s == 20


def test_a_plan_written_with_the_former_load_key_still_reads(tmp_path):
    text = Path("scenarios/plan_vit_load.yaml").read_text()
    assert "\noffered_load: {rate_per_s: 20" in text
    old = load_plan(_plan_file(tmp_path, text.replace("\noffered_load:", "\nload:")))
    assert old.file.offered_load == load_plan("scenarios/plan_vit_load.yaml").file.offered_load


def test_example_plan_reduced_orders_boards(tmp_path):
    """plan_vit.yaml on one link at P <= 2 and CR 2, with the accuracies it evaluates
    (dinov2-small, 1,000 MNIST-5k digits: 0.970 exact, 0.933 prism P=2 CR=2) as a table.
    ViT-B/16 is 35.16 GFLOPs. One Orin Nano Super (2089 GFLOP/s x 0.5) takes
    35.16 / 1044.5 = 33.7 ms; one Jetson Nano (235.8 x 0.5) 35.16 / 117.9 = 298 ms, over
    the 200 ms SLO; a Pi 5 (153.6 x 0.3) needs 17.6 / 46.1 = 381 ms for its half of the
    model even at P=2. So every Pi misses, and of the Nanos only a pair can make it, with
    PRISM (19.0 GFLOPs and half of voltage's bytes per device; voltage: 20.6 GFLOPs)."""
    data = yaml.safe_load(Path("scenarios/plan_vit.yaml").read_text())
    del data["dataset"]
    data |= {"counts": [1, 2], "prism": {"cr": [2]}, "links": ["ethernet-1g"],
             "accuracy": {"source": "prismsim accuracy, dinov2-small on mnist-5k", "entries": [
                 {"strategy": "single", "value": 0.97}, {"strategy": "voltage", "value": 0.97},
                 {"strategy": "prism", "cr": 2, "value": 0.933}]}}
    result = run_plan(load_plan(_plan_file(tmp_path, yaml.safe_dump(data))))
    table = result.table
    assert len(table) == 3 * 3  # single, voltage P=2, prism P=2 on each board
    orin = "jetson-orin-nano-8gb-25w"
    assert [(r["device"], r["count"], r["strategy"]) for _, r in result.ranked.iterrows()] == [
        ("jetson-nano-4gb", 2, "prism"), (orin, 1, "single"), (orin, 2, "prism"),
        (orin, 2, "voltage")]  # $198, $249, then $498 twice: prism needs less energy
    alone = table[(table["count"] == 1)].set_index("device")["latency_s"]
    assert alone[orin] == pytest.approx(35.16 / 1044.5, rel=0.01)
    assert alone["jetson-nano-4gb"] == pytest.approx(35.16 / 117.9, rel=0.01)
    assert not table[table["device"] == "raspberry-pi-5"]["meets_slo"].any()
    nano_pair = table[(table["device"] == "jetson-nano-4gb") & (table["count"] == 2)]
    assert nano_pair.set_index("strategy")["meets_slo"].to_dict() == {
        "prism": True, "voltage": False}
    assert result.front["device"].tolist() == ["jetson-nano-4gb", orin]


def test_a_load_requirement_buys_groups(tmp_path):
    """2 requests/s, one every 0.5 s, p99 within 1 s, one or two groups. A group serves
    at most one request per its master's busy time: slow prism CR=2 (0.9 s) and fast
    voltage (0.6 s: device 1's 4 MB hold the link until 0.6 s) fall behind alone and
    keep up as two groups taking turns (one request a second each); fast single (0.3 s)
    and fast prism CR=2 (0.375 s) keep up alone. By cost, then energy of one inference."""
    text = PLAN + "load: {rate_per_s: 2, p99_ms: 1000, arrivals: constant}\ngroups: [1, 2]\n"
    result = run_plan(load_plan(_plan_file(tmp_path, text)), workload=toy_workload)
    ranked = result.ranked
    assert [(*_key(r), r["groups"]) for _, r in ranked.iterrows()] == [
        ("fast", "single", None, 1), ("slow", "prism", 2.0, 2), ("fast", "single", None, 2),
        ("fast", "prism", 2.0, 1), ("fast", "prism", 2.0, 2), ("fast", "voltage", None, 2)]
    assert ranked["cost_usd"].tolist() == [200, 200, 400, 400, 800, 800]
    assert ranked["p99_load_s"].tolist() == pytest.approx([0.3, 0.9, 0.3, 0.375, 0.375, 0.6])
    assert ranked["throughput_per_s"].tolist() == pytest.approx([2.0] * 6, rel=0.01)
    table = result.table.set_index(["device", "strategy", "groups"])
    assert table.loc[("slow", "prism", 1)].query("cr == 2")["fails"].tolist() == ["load"]
    assert table.loc[("fast", "voltage", 1), "fails"] == "load"
    assert math.isnan(table.loc[("slow", "single", 1), "p99_load_s"])  # idle: 1.2 s, not run


def _holding(c: Configuration) -> Workload:
    """toy_workload with 3 MB of weights on every device (each program keeps them all)."""
    wl = toy_workload(c)
    wl.resident_bytes = [3 * MB] * wl.n_devices
    return wl


def test_a_deployment_that_does_not_fit_its_memory_is_never_ranked(tmp_path):
    """slow now has 4,000,000 bytes of memory (fast: none given, so not known). Each
    device holds 3 MB of weights, and its message buffers: voltage 4 MB (7 MB: over),
    prism CR 2 a 2 MB message (5 MB: 1 MB over), CR 4 1 MB (4 MB: fits exactly), single
    none (3 MB). slow prism CR 2, ranked first before, is out: fast single, fast prism
    CR 2, fast voltage remain, in that order."""
    text = PLAN.replace("{name: slow, price_usd: 50,",
                        "{name: slow, price_usd: 50, memory_gib: 0.0037252902984619140625,")
    table = run_plan(load_plan(_plan_file(tmp_path, text)), workload=_holding).table
    ranked = table[table["feasible"]]
    assert [_key(r) for _, r in ranked.iterrows()] == [
        ("fast", "single", None), ("fast", "prism", 2.0), ("fast", "voltage", None)]
    slow = table[table["device"] == "slow"].set_index(["strategy", "cr"], drop=False)
    # 5,000,000 bytes = 4.77 MiB, 4,000,000 = 3.81 MiB
    assert slow.loc[("prism", 2.0), "fails"] == (
        "memory: device 0 (slow) needs 4.8 MiB of its 3.8 MiB (1,000,000 bytes over); "
        "device 1 (slow) needs 4.8 MiB of its 3.8 MiB (1,000,000 bytes over)")
    assert slow.loc[("prism", 4.0), "memory_peak_bytes"] == 4 * MB
    assert slow.loc[("prism", 4.0), "fits"] == True  # noqa: E712 (a column of objects)
    assert table[table["device"] == "fast"]["fits"].isna().all()
