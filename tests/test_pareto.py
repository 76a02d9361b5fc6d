"""Pareto fronts: one definition for the sweep summary, the plots and the planner."""

import math

import pandas as pd

from prismsim.pareto import front, front_rows, latency_score_front
from prismsim.sweep.summary import latency_accuracy_front


def test_pareto_front_higher_is_better():
    pts = [(1.0, 0.5), (2.0, 0.9), (1.5, 0.4), (3.0, 0.9), (0.5, 0.1), (2.5, 0.95)]
    # 2 is beaten by 0 (faster, better); 3 by 1 (faster, as good); the rest each trade
    # latency for accuracy. Sorted by latency: 4 (0.5), 0 (1.0), 1 (2.0), 5 (2.5).
    assert latency_score_front(pts) == [4, 0, 1, 5]


def test_pareto_front_lower_is_better():
    pts = [(1.0, 1.2), (2.0, 1.0), (1.5, 1.1), (3.0, 1.0), (2.5, 1.15)]
    # Lower loss wins: 3 and 4 are beaten by 1 (faster, loss no higher).
    assert latency_score_front(pts, higher_is_better=False) == [0, 2, 1]
    # Read as "higher is better", point 0 is fastest and best: it beats all the others.
    assert latency_score_front(pts, higher_is_better=True) == [0]


def test_pareto_front_ties_and_nan():
    assert latency_score_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]  # equal: neither beats
    assert latency_score_front([(1.0, math.nan), (2.0, 0.5)]) == [1]
    assert latency_score_front([]) == []


def test_front_over_three_minimized_columns():
    pts = [[1, 1, 1], [1, 1, 1], [2, 0, 5], [2, 1, 5], [0, 9, math.nan]]
    # 0 and 1 equal: both stay; 2 trades; 3 is beaten by 2; 4 has a NaN: never on it
    assert front(pts) == [0, 1, 2]


def test_rows_mix_minimized_and_maximized_columns():
    df = pd.DataFrame({"latency_s": [1.0, 2.0, 1.5], "accuracy": [0.5, 0.9, 0.4]},
                      index=["a", "b", "c"])
    assert front_rows(df, minimize=["latency_s"], maximize=["accuracy"]) == ["a", "b"]


def test_summary_front_turns_for_bits_per_byte():
    df = pd.DataFrame({"latency_s": [1.0, 2.0, 1.5], "accuracy": [2.6, 2.5, 2.7],
                       "metric": ["bits_per_byte"] * 3})
    assert latency_accuracy_front(df) == [0, 1]  # 2 is slower and worse than 0
    df["metric"] = "accuracy"  # higher is better: 2 is slower than 0 but better, 1 neither
    assert latency_accuracy_front(df) == [0, 2]


def test_the_summary_says_which_rate_its_rows_are_at():
    """The summary's rows are at the rate closest to 200 Mbit/s the sweep has."""
    from prismsim.sweep.summary import summary_heading

    at = pd.DataFrame({"bandwidth_mbps": [50.0, 200.0, 1000.0], "latency_s": [1, 1, 1]})
    assert summary_heading(at) == "fastest configuration of each strategy at 200 Mbit/s:"
    wifi = pd.DataFrame({"bandwidth_mbps": [433.3, 866.7, 1733.3], "latency_s": [1, 1, 1]})
    assert summary_heading(wifi) == ("fastest configuration of each strategy at 433.3 "
                                     "Mbit/s (the rate nearest 200):")
