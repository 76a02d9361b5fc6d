"""Adaptive PRISM: the performance map and the chooser against hand-computed times and
energies, the scenario section, and the Jetson-over-WiFi scenario reduced."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prismsim.adaptive import (
    MapEntry,
    PerformanceMap,
    build_map,
    choose,
    map_bandwidth,
    map_batch,
    serve,
)
from prismsim.configuration import Configuration
from prismsim.scenario import ScenarioError, load_scenario
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sweep.run import run_sweep
from prismsim.workload import Message, Task, Workload

MB = 1_000_000
# 1 GFLOP/s: 1e9 FLOPs take 1 s. 1 W idle, 5 W computing, the radio costs nothing extra.
BOARD = DeviceSpec(peak_gflops=1.0, efficiency=1.0, idle_w=1, compute_w=5, tx_w=1, rx_w=1)
LINK = LinkSpec(bandwidth_mbps=8, latency_ms=500)
SINGLE = Configuration("single", 1)
PRISM = Configuration("prism", 2, cr=4.0)


def workload_of(cand: Configuration, batch: int) -> Workload:
    """single: b x 1e9 FLOPs on one board. "prism": each board b x 0.5e9 FLOPs, then
    board 1 sends b MB to board 0. At bandwidth w Mbit/s:
      single  latency b,                        energy 1 W x b + 4 W x b = 5b
      prism   latency L = 0.5b + 8b/w + 0.5,    energy 2 boards x 1 W x L + 4 W x 0.5b x 2
                                                       = 2L + 4b"""
    if cand == SINGLE:
        return Workload({}, [[Task("compute", "c", batch * 10**9)]])
    half = Task("compute", "c", batch * 5 * 10**8)
    msg = Message(0, 1, (0,), False, "L0.rows", (batch * MB // 4,), batch * MB)
    return Workload({}, [[half, Task("recv", "r", 0, (0,))], [half, Task("send", "s", 0, (0,))]],
                    [msg])


def hand_map(accuracy: dict[Configuration, float] | None = None) -> PerformanceMap:
    return build_map(workload_of, [SINGLE, PRISM], BOARD, LINK, [1, 4], [8, 32], accuracy)


def test_map_built_by_the_simulator_holds_hand_computed_values():
    got = {(e.configuration, e.batch, e.bandwidth_mbps): (e.latency_s, e.energy_j)
           for e in hand_map().entries}
    expected = {
        (SINGLE, 1, 8.0): (1.0, 5.0), (SINGLE, 1, 32.0): (1.0, 5.0),
        (SINGLE, 4, 8.0): (4.0, 20.0), (SINGLE, 4, 32.0): (4.0, 20.0),
        (PRISM, 1, 8.0): (2.0, 8.0),     # 0.5 + 1 + 0.5 s;   2 x 2 + 4
        (PRISM, 1, 32.0): (1.25, 6.5),   # 0.5 + 0.25 + 0.5;  2 x 1.25 + 4
        (PRISM, 4, 8.0): (6.5, 29.0),    # 2 + 4 + 0.5;       2 x 6.5 + 16
        (PRISM, 4, 32.0): (3.5, 23.0),   # 2 + 1 + 0.5;       2 x 3.5 + 16
    }
    assert got.keys() == expected.keys()
    for key, (lat, energy) in expected.items():
        assert got[key] == (pytest.approx(lat), pytest.approx(energy)), key


def test_latency_objective_picks_prism_only_where_it_is_faster():
    pmap = hand_map()
    assert choose(pmap, 4, 32).configuration == PRISM  # 3.5 s < 4 s
    assert choose(pmap, 1, 32).configuration == SINGLE  # 1 s < 1.25 s: the 0.5 s latency
    assert choose(pmap, 4, 8).configuration == SINGLE  # 4 s < 6.5 s: the link is too slow
    assert choose(pmap, 1, 8).configuration == SINGLE


def test_lookup_is_at_or_below_the_request_bandwidth():
    assert map_bandwidth([8, 32], 30) == 8  # 32 is nearer, but better than the link
    assert map_bandwidth([8, 32], 32) == 32
    assert map_bandwidth([8, 32], 100) == 32
    assert map_bandwidth([8, 32], 4) == 8  # below the map: the worst it knows
    pmap = hand_map()
    # at 30 Mbit/s prism would take 2 + 32/30 + 0.5 = 3.57 s < 4 s, but the map is read
    # at 8 Mbit/s, where single wins: the conservative choice
    assert choose(pmap, 4, 30).configuration == SINGLE
    assert choose(pmap, 4, 100).configuration == PRISM


def test_nearest_batch_ties_to_the_larger():
    assert map_batch([1, 4], 2) == 1
    assert map_batch([1, 4], 3) == 4
    assert map_batch([2, 4], 3) == 4
    assert map_batch([1, 4], 16) == 4
    assert choose(hand_map(), 3, 32).configuration == PRISM  # read at batch 4
    assert choose(hand_map(), 2, 32).configuration == SINGLE  # read at batch 1


def test_serve_simulates_the_choice_at_the_actual_conditions():
    entry, result = serve(hand_map(), workload_of, BOARD, LINK, 4, 100)
    assert entry.configuration == PRISM and entry.bandwidth_mbps == 32
    assert result.latency_s == pytest.approx(2 + 0.32 + 0.5)  # 32 Mbit over 100 Mbit/s
    assert result.energy_j == pytest.approx(2 * 2.82 + 16)
    entry, result = serve(hand_map(), workload_of, BOARD, LINK, 3, 40)
    assert entry.configuration == PRISM and entry.batch == 4
    assert result.latency_s == pytest.approx(1.5 + 0.6 + 0.5)


def test_accuracy_floor_excludes_a_candidate():
    pmap = hand_map({SINGLE: 0.97, PRISM: 0.80})
    assert choose(pmap, 4, 32, accuracy_floor=0.8).configuration == PRISM  # at the floor: kept
    assert choose(pmap, 4, 32, accuracy_floor=0.9).configuration == SINGLE
    with pytest.raises(ValueError, match=r"accuracy floor 0\.99 at batch 4, 32 Mbit/s"):
        choose(pmap, 4, 32, accuracy_floor=0.99)
    bpb = hand_map({SINGLE: 2.5, PRISM: 2.7})  # bits per byte: lower is better
    assert choose(bpb, 4, 32, accuracy_floor=2.6, lower_is_better=True).configuration == SINGLE
    assert choose(bpb, 4, 32, accuracy_floor=2.7, lower_is_better=True).configuration == PRISM
    # prism's accuracy unknown: it cannot be shown to reach the floor
    assert choose(hand_map({SINGLE: 0.97}), 4, 32, accuracy_floor=0.5).configuration == SINGLE


def test_energy_objective_differs_from_latency():
    pmap = hand_map()
    # prism is faster at batch 4 and 32 Mbit/s (3.5 s < 4 s) but keeps two boards
    # powered for 3.5 s: 23 J against one board's 20 J
    assert choose(pmap, 4, 32, objective="latency").configuration == PRISM
    assert choose(pmap, 4, 32, objective="energy").configuration == SINGLE
    # with idle boards drawing nothing, prism's two half-loads cost what one full load
    # does (4 x 5 W x 0.5 s x 2 = 20 J), a tie that the shorter latency breaks
    cool = BOARD.model_copy(update={"idle_w": 0.0, "tx_w": 0.0, "rx_w": 0.0})
    pmap = build_map(workload_of, [SINGLE, PRISM], cool, LINK, [4], [32])
    assert [e.energy_j for e in pmap.entries] == [pytest.approx(20.0)] * 2
    assert choose(pmap, 4, 32, objective="energy").configuration == PRISM


def test_map_csv_round_trip_and_a_measured_map(tmp_path):
    pmap = hand_map({SINGLE: 0.97, PRISM: 0.8})
    pmap.to_csv(tmp_path / "map.csv")
    assert PerformanceMap.from_csv(tmp_path / "map.csv") == pmap
    # a measured profile: no accuracy column, no CR for single; extra columns ignored
    (tmp_path / "measured.csv").write_text(
        "board,strategy,devices,cr,segments,batch,bandwidth_mbps,latency_s,energy_j\n"
        "orin,single,1,,,8,100,0.120,1.8\n"
        "orin,prism,3,8,,8,100,0.090,2.4\n")
    measured = PerformanceMap.from_csv(tmp_path / "measured.csv")
    assert measured.entries[1] == MapEntry(Configuration("prism", 3, 8.0), 8, 100.0, 0.09, 2.4)
    assert math.isnan(measured.entries[0].accuracy)
    assert choose(measured, 8, 150).configuration.label() == "prism P=3 CR=8"
    assert choose(measured, 8, 150, objective="energy").configuration.label() == "single"
    with pytest.raises(ValueError, match="missing column"):
        PerformanceMap.from_frame(pd.DataFrame({"strategy": ["single"]}))
    with pytest.raises(ValueError, match="appears twice"):
        PerformanceMap.from_frame(pd.concat([pmap.to_frame()] * 2))


# ---------------------------------------------------------------- scenarios

TINY = Path("scenarios/tiny_vit.yaml").read_text().replace(
    "[50, 200, 1000], latency_ms: 1", "[5, 200, 1000], latency_ms: 0.1")


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD = {
    "objective": ("adaptive: {objective: speed}",
                  "s.yaml: adaptive.objective: Input should be 'latency' or 'energy', "
                  "got 'speed'"),
    "unknown key": ("adaptive: {objectve: latency}",
                    "s.yaml: adaptive.objectve: Extra inputs are not permitted"),
    "bandwidth": ("adaptive: {map_bandwidth_mbps: [100, -1]}",
                  "s.yaml: adaptive.map_bandwidth_mbps[1]: Input should be greater than 0"),
    "candidate": ("adaptive: {candidates: [single, galaxy]}",
                  "s.yaml: adaptive.candidates[1]: 'galaxy' is not one of the scenario's"),
    "floor": ("adaptive: {accuracy_floor: 0.9}",
              "s.yaml: adaptive.accuracy_floor: needs a dataset: section"),
    "map": ("adaptive: {map_csv: nowhere.csv}", "s.yaml: adaptive.map_csv: "),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_adaptive_section_names_file_and_key(tmp_path, case):
    extra, message = BAD[case]
    with pytest.raises(ScenarioError) as err:
        load_scenario(_write(tmp_path, TINY + extra + "\n"))
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def _latency_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.pivot_table(index="bandwidth_mbps", columns="strategy", values="latency_s",
                          aggfunc="min")


def test_adaptive_rows_are_the_best_candidate_and_a_coarse_map_is_conservative(tmp_path):
    path = _write(tmp_path, TINY + f"output: {tmp_path / 'exact'}\nadaptive: {{}}\n")
    df = run_sweep(load_scenario(path))
    assert len(df) == (1 + 2 + 4) * 3 + 3  # and one adaptive row per bandwidth
    best = _latency_table(df[df.strategy != "voltage"])
    # the map is the scenario's own grid: adaptive is the fastest candidate everywhere
    assert (best["adaptive"] == best[["single", "prism"]].min(axis=1)).all()
    adaptive = df[df.strategy == "adaptive"].set_index("bandwidth_mbps")
    assert adaptive.loc[5.0, "adaptive_choice"] == "single"  # 5 Mbit/s: too slow to split
    assert adaptive.loc[1000.0, "adaptive_choice"].startswith("prism")
    assert df[df.strategy != "adaptive"].adaptive_choice.isna().all()
    # a coarse map (5 and 1000 Mbit/s): at 200 Mbit/s it is read at 5, and stays local
    coarse = path.read_text().replace("adaptive: {}", "adaptive: {map_bandwidth_mbps: [5, "
                                      "1000]}").replace("exact", "coarse")
    df2 = run_sweep(load_scenario(_write(tmp_path, coarse, "coarse.yaml")))
    chosen = df2[df2.strategy == "adaptive"].set_index("bandwidth_mbps").adaptive_choice
    assert chosen.to_dict() == {5.0: "single", 200.0: "single",
                                1000.0: adaptive.loc[1000.0, "adaptive_choice"]}
    # the map the sweep wrote loads back as a measured map and gives the same rows
    measured = path.read_text().replace("exact", "measured").replace(
        "adaptive: {}", f"adaptive: {{map_csv: {tmp_path / 'exact' / 'adaptive_map.csv'}}}")
    df3 = run_sweep(load_scenario(_write(tmp_path, measured, "measured.yaml")))
    assert (df3.adaptive_choice.fillna("") == df.adaptive_choice.fillna("")).all()


def test_jetson_wifi_reduced(tmp_path):
    """The shipped scenario with 4 test images, batches 1 and 8, one CR, and the map on
    the scenario's own grid without a floor: full-tensor exchange is slower than one board
    at every batch and bandwidth; adaptive is the fastest of its candidates there, and
    beats static voltage on latency and energy."""
    data = yaml.safe_load(Path("scenarios/jetson_wifi.yaml").read_text())
    data.update(batch=[1, 8], output=str(tmp_path / "out"), prism={"cr": [16]},
                adaptive={"objective": "latency"})
    data["dataset"]["limit"] = 4
    df = run_sweep(load_scenario(_write(tmp_path, yaml.safe_dump(data), "jetson.yaml")))
    assert len(df) == (1 + 2 + 2 + 1) * 2 * 3  # 6 rows a (batch, bandwidth)
    assert (df.medium == "shared").all() and df.rendezvous.all()
    assert (df.device_profile == "jetson-orin-nano-8gb-15w").all()
    for (batch, bw), rows in df.groupby(["batch", "bandwidth_mbps"]):
        lat = rows.groupby("strategy").latency_s.min()
        energy = rows.groupby("strategy").energy_j.min()
        assert lat["voltage"] > lat["single"], (batch, bw)
        assert lat["adaptive"] == min(lat["single"], lat["prism"]), (batch, bw)
        assert lat["adaptive"] < lat["voltage"] and energy["adaptive"] < energy["voltage"]
