"""Sampled inferences against distributions worked out independently: a chain of two
lognormal compute steps against its convolution (the standard library's normal
distribution, integrated), a uniform extra delay, a uniform slow factor; seeds and
common random numbers; the replay of mean times kept exactly when nothing varies."""

import statistics

import numpy as np
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.draws import draws
from prismsim.sim.sampling import sample_inferences
from prismsim.sim.variability import (
    LinkVariability,
    SpeedVariability,
    lognormal_sigma,
    quantile_mean,
)
from prismsim.workload import Message, Task, Workload

GFLOP = 10**9
CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1 GFLOP takes 1 s
LINK = LinkSpec(bandwidth_mbps=8)  # 1 MB takes 1 s, no latency


def _chain(first_gflop: float = 1, second_gflop: float = 2) -> Workload:
    """Device 0 computes, sends 1 MB to device 1, which computes: first + 1 s + second."""
    msg = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m", shape=(250_000,),
                  payload_bytes=1_000_000)
    return Workload(meta={}, messages=[msg], tasks=[
        [Task("compute", "a", int(first_gflop * GFLOP)), Task("send", "m", 0, (0,))],
        [Task("recv", "r", 0, (0,)), Task("compute", "b", int(second_gflop * GFLOP))]])


def _varied(**fields) -> DeviceSpec:
    return CPU.model_copy(update={"variability": SpeedVariability(**fields)})


def _chain_cdf(t: float, cv: float, points: int = 20_000) -> float:
    """P(X + 1 + 2Y <= t) for X, Y lognormal with mean 1 and this CV: the mean over X's
    quantiles of Y's CDF at what is left (a midpoint rule in X's probability)."""
    sigma = lognormal_sigma(cv)
    log = statistics.NormalDist(-sigma * sigma / 2, sigma)
    total = 0.0
    for k in range(points):
        x = np.exp(log.inv_cdf((k + 0.5) / points))
        left = (t - 1.0 - x) / 2.0
        total += log.cdf(np.log(left)) if left > 0 else 0.0
    return total / points


def test_a_chain_of_two_varying_steps_has_their_convolution_as_its_distribution():
    n, cv = 20_000, 0.3
    s = sample_inferences(_chain(), _varied(fast_cv=cv), LINK, n, seed=7)
    assert s.varies
    assert s.latency_s.mean() == pytest.approx(4.0, abs=3 * 0.67 / n**0.5)  # 1 + 1 + 2
    # the largest gap between the two CDFs at nine of the samples' quantiles: under
    # 1.95 / sqrt(n) (Kolmogorov-Smirnov, 0.1 % level) at n = 20,000
    gaps = [abs(float((s.latency_s <= t).mean()) - _chain_cdf(t, cv))
            for t in np.quantile(s.latency_s, np.linspace(0.1, 0.9, 9))]
    assert max(gaps) < 1.95 / n**0.5


def test_a_uniform_extra_delay_adds_a_uniform_wait():
    link = LINK.model_copy(update={"variability": LinkVariability(
        delay_us=((0.0, 0.0), (1.0, 1000.0)))})
    assert quantile_mean(link.variability.delay_us) == 500.0
    n = 4000
    extra = sample_inferences(_chain(), CPU, link, n, seed=1).latency_s - 4.0
    assert extra.min() >= 0 and extra.max() <= 1e-3
    # uniform on [0, 1 ms]: mean 0.5 ms, deviation 1 ms / sqrt(12)
    assert extra.mean() == pytest.approx(5e-4, abs=3 * 1e-3 / 12**0.5 / n**0.5)


def test_a_slow_factor_holds_for_every_step_of_an_inference():
    """Uniform on [1, 3] (quantiles (0, 1) and (1, 3)), no fast part: device 0's 1 s step
    takes 1 to 3 s and device 1's 2 s step 2 to 6 s, each from its own draw."""
    uniform = _varied(slow=((0.0, 1.0), (1.0, 3.0)))
    assert quantile_mean(uniform.variability.slow) == 2.0
    n = 4000
    s = sample_inferences(_chain(), uniform, LINK, n, seed=3)
    assert s.latency_s.min() >= 1 + 1 + 2 and s.latency_s.max() <= 3 + 1 + 6
    # mean 2 + 1 + 4; the two uniform draws are independent: variance (1 + 4) x 1/3
    assert s.latency_s.mean() == pytest.approx(7.0, abs=3 * (5 / 3) ** 0.5 / n**0.5)
    assert s.latency_s.var() == pytest.approx(5 / 3, rel=0.1)


def test_nothing_varies_every_sample_is_the_mean_time_replay():
    wl = _chain(1.5, 0.7)
    s = sample_inferences(wl, CPU, LINK, 5, seed=0)
    assert not s.varies
    assert list(s.latency_s) == [simulate(wl, CPU, LINK).latency_s] * 5
    constant = _varied(slow=((0.5, 1.0),), fast_cv=0.0)  # given, but nothing to draw
    assert list(sample_inferences(wl, constant, LINK, 3).latency_s) == \
        [simulate(wl, CPU, LINK).latency_s] * 3


def test_the_same_seed_draws_the_same_world():
    spec = _varied(slow=((0.1, 0.9), (0.9, 1.3)), fast_cv=0.2)
    one = sample_inferences(_chain(), spec, LINK, 50, seed=11).latency_s
    assert (sample_inferences(_chain(), spec, LINK, 50, seed=11).latency_s == one).all()
    assert not (sample_inferences(_chain(), spec, LINK, 50, seed=12).latency_s == one).any()


def test_two_configurations_see_the_same_slow_factors():
    """Common random numbers: inference i's slow factor on a device is the same whatever
    the program (here 1 and 3 compute steps on device 0)."""
    spec = _varied(slow=((0.0, 0.5), (1.0, 2.0)))
    longer = _chain()
    longer.tasks[0][:0] = [Task("compute", "x", GFLOP), Task("compute", "y", GFLOP)]
    short_worlds = draws(_chain(), [spec, spec], LINK, 20, seed=5)
    long_worlds = draws(longer, [spec, spec], LINK, 20, seed=5)
    for a, b in zip(short_worlds, long_worlds, strict=True):
        assert a.factors[0].shape == (1,) and b.factors[0].shape == (3,)
        assert (b.factors[0] == a.factors[0][0]).all() and a.factors[1] == b.factors[1]
    assert len({float(w.factors[0][0]) for w in short_worlds}) == 20


@pytest.mark.parametrize(("fields", "message"), [
    ({"slow": ()}, "at least one [q, value] pair"),
    ({"slow": ((0.5, 1.0), (0.2, 2.0))}, "quantile levels must increase"),
    ({"slow": ((0.2, 2.0), (0.8, 1.0))}, "values must not decrease"),
    ({"slow": ((1.5, 1.0),)}, "must lie in [0, 1]"),
    ({"slow": ((0.5, 0.0),)}, "must be above 0"),
])
def test_a_distribution_with_no_mass_or_out_of_order_is_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SpeedVariability(**fields)


CATALOG = """
devices:
  jittery:
    peak_gflops: 100
    variability: {slow: [[0.1, 0.9], [0.5, 1.0], [0.99, 1.6]], fast_cv: 0.1}
links:
  lan:
    bandwidth_mbps: 100
    variability: {delay_us: [[0.5, 100], [0.99, 2000]]}
"""
SIMULATE = ["simulate", "--model", "vit-tiny", "--strategy", "voltage", "--devices", "2",
            "--device", "jittery", "--link", "lan"]


def test_simulate_samples_draws_from_a_catalogs_variability(tmp_path):
    (tmp_path / "cat.yaml").write_text(CATALOG)
    args = [*SIMULATE, "--catalog", str(tmp_path / "cat.yaml"), "--samples", "40"]
    result = CliRunner().invoke(main, [*args, "--cdf", str(tmp_path / "cdf.svg")])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "sampled inferences" in ln)
    assert line.startswith("40 sampled inferences (seed 0): mean ")
    assert (tmp_path / "cdf.svg").read_text().startswith("<?xml")
    again = CliRunner().invoke(main, [*args, "--cdf", str(tmp_path / "again.svg")])
    assert again.output == result.output.replace("cdf.svg", "again.svg")
    assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "cdf.svg").read_bytes()
    plain = CliRunner().invoke(main, ["simulate", "--model", "vit-tiny", "--strategy",
                                      "voltage", "--devices", "2", "--samples", "3"])
    assert "no device or link here has variability" in plain.output


def test_a_catalog_distribution_out_of_order_is_one_line_naming_file_and_key(tmp_path):
    (tmp_path / "cat.yaml").write_text(CATALOG.replace("[0.5, 100], [0.99, 2000]",
                                                       "[0.5, 100], [0.99, 20]"))
    result = CliRunner().invoke(main, [*SIMULATE, "--catalog", str(tmp_path / "cat.yaml"),
                                       "--samples", "5"])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {tmp_path / 'cat.yaml'}: links.lan.variability."
                                    f"delay_us: Value error, values must not decrease")
    assert len(result.output.strip().splitlines()) == 1
