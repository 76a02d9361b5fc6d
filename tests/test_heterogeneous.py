"""Heterogeneous devices for the position-wise strategies: token partitions in
proportion to device speed, still exact, and faster on unequal devices."""

import pytest

from prismsim import load_model, run_numerics
from prismsim.executors.trace import trace_workload
from prismsim.models.load import random_inputs
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.strategies.contexts import make_contexts
from tests.conftest import rel_err

SPEEDS = (2.0, 1.0, 1.0)


def test_speed_proportional_partition_of_197_tokens():
    stack = load_model("vit-tiny")
    inputs = random_inputs(stack)
    equal = make_contexts(stack, inputs, 3)[0].sizes
    by_speed = make_contexts(stack, inputs, 3, weights=SPEEDS)[0].sizes
    assert equal == (66, 66, 65)  # 197 = 3 x 65 + 2: the first two one longer
    # 197 x 2/4 = 98.5, 197 x 1/4 = 49.25 twice: floors 98 + 49 + 49 = 196, the spare
    # token to the largest remainder (0.5, device 0)
    assert by_speed == (99, 49, 49)


@pytest.mark.parametrize(("model", "weights"), [("vit-tiny", SPEEDS), ("gpt2-tiny", (3.0, 1.0))])
def test_voltage_with_unequal_partitions_equals_single(model, weights):
    stack = load_model(model)
    inputs = random_inputs(stack, batch=2, seed=1)
    single = run_numerics(stack, inputs, "single")
    voltage = run_numerics(stack, inputs, "voltage", len(weights), weights=weights)
    assert rel_err(voltage, single) <= 1e-5
    # prism at CR = 1 is voltage on unequal partitions too
    prism = run_numerics(stack, inputs, "prism", len(weights), weights=weights, cr=1)
    assert rel_err(prism, voltage) <= 1e-5


def test_speed_proportional_split_is_faster_on_unequal_devices():
    """One device twice as fast as the other two, a link fast enough for compute to
    dominate: with equal partitions the slow devices hold 66 and 65 rows, with the
    proportional split 49 each, so the slowest device computes less."""
    fast, slow = (DeviceSpec(peak_gflops=g, efficiency=1.0) for g in (2.0, 1.0))
    devices, link = [fast, slow, slow], LinkSpec(bandwidth_mbps=10_000)
    equal = simulate(trace_workload("vit-tiny", "voltage", 3), devices, link)
    by_speed = simulate(trace_workload("vit-tiny", "voltage", 3, weights=SPEEDS), devices, link)
    assert by_speed.latency_s < equal.latency_s
    assert max(d.compute_s for d in by_speed.devices) < max(d.compute_s for d in equal.devices)
