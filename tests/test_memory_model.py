"""What each device holds, by hand: weights, the fullest step, message buffers and the
runtime on a hand-made two-device program; which devices fit, and by how much those that
do not overflow, in one line."""

from __future__ import annotations

from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.cost.units import GIB_BYTES
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.sim import DeviceSpec
from prismsim.sim.memory import buffers_bytes, device_memory, overflow
from prismsim.workload import Message, Task, Workload


def _program() -> Workload:
    """Device 0 computes (live 3,000 then 5,000 bytes), sends m0 (400 bytes) and takes
    m1 and m2 in one receive (100 + 250 bytes); device 1 takes m0, computes (live 7,000)
    and sends m1 and m2. Device 0 holds 10,000 bytes of weights, device 1 6,000."""
    msgs = [Message(0, 0, (1,), False, "m0", (100,), 400),
            Message(1, 1, (0,), False, "m1", (25,), 100),
            Message(2, 1, (0,), False, "m2", (62,), 250)]
    tasks = [[Task("compute", "a", 1, live_bytes=3_000),
              Task("compute", "b", 1, live_bytes=5_000),
              Task("send", "m0", messages=(0,)), Task("recv", "r", messages=(1, 2))],
             [Task("recv", "r", messages=(0,)), Task("compute", "c", 1, live_bytes=7_000),
              Task("send", "m1", messages=(1,)), Task("send", "m2", messages=(2,))]]
    return Workload({}, tasks, msgs, resident_bytes=[10_000, 6_000])


def test_each_devices_memory_by_hand():
    """Device 0: 10,000 + 5,000 (its fuller step) + 350 (m1 and m2 at once) + 400 (m0)
    = 15,750 bytes, with 0.5 GiB of runtime on top. Device 1: 6,000 + 7,000 + 400 + 250
    = 13,650; it stages through host memory, so its buffers count twice: 14,300."""
    wl = _program()
    cpu = DeviceSpec(peak_gflops=1.0, runtime_gib=0.5, memory_gib=1.0)
    gpu = DeviceSpec(peak_gflops=1.0, staging_us=10.0, staging_gbytes_per_s=1.0)
    assert buffers_bytes(wl, 0, stages=False) == 750
    assert buffers_bytes(wl, 1, stages=True) == 1_300
    first, second = device_memory(wl, [cpu, gpu])
    assert (first.weights_bytes, first.live_bytes, first.buffers_bytes) == \
        (10_000, 5_000, 750)
    assert first.peak_bytes == 15_750 + GIB_BYTES // 2
    assert second.peak_bytes == 14_300
    assert (first.fits, second.fits) == (True, None)  # the second has no capacity given


def test_a_device_that_does_not_fit_is_named_with_its_overflow():
    """A capacity of 12,000 bytes: device 0 needs 15,750, 3,750 over."""
    wl = _program()
    small = DeviceSpec(name="tiny-board", peak_gflops=1.0, memory_gib=12_000 / GIB_BYTES)
    roomy = DeviceSpec(name="roomy", peak_gflops=1.0, memory_gib=1.0)
    memory = device_memory(wl, [small, roomy])
    assert [m.fits for m in memory] == [False, True]
    assert memory[0].over_bytes == 3_750
    assert overflow(memory, [small, roomy]) == (
        "device 0 (tiny-board) needs 15,750 bytes of its 12,000 bytes (3,750 bytes over)")
    assert overflow(memory[1:], [roomy]) is None


def test_simulate_says_what_each_device_holds_and_which_do_not_fit(tmp_path):
    """vit-tiny alone on a board of 0.1 GiB with 0.1 GiB of runtime: its 7,869,736
    bytes of weights (every parameter, fp32: tests/test_memory_trace.py counts them by
    hand) do not fit; on a board of 1 GiB they do. The sweep row of the first says so."""
    (tmp_path / "cat.yaml").write_text(
        "devices:\n"
        "  small: {peak_gflops: 100, memory_gib: 0.1, runtime_gib: 0.1}\n"
        "  roomy: {peak_gflops: 100, memory_gib: 1, runtime_gib: 0.1}\n")
    args = ["simulate", "--model", "vit-tiny", "--strategy", "single", "--devices", "1",
            "--catalog", str(tmp_path / "cat.yaml"), "--link", "ethernet-1g", "--device"]
    small = CliRunner().invoke(main, [*args, "small"])
    assert small.exit_code == 0, small.output
    # 0.1 GiB = 102.4 MiB, all of it runtime: the weights and the fullest step are over
    assert "does not fit: device 0 (small) needs " in small.output
    assert " of its 102.4 MiB (" in small.output, small.output
    wl = WorkloadCache().get("vit-tiny", "single", 1)
    small_spec = DeviceSpec(peak_gflops=100, memory_gib=0.1, runtime_gib=0.1)
    (m,) = device_memory(wl, small_spec)
    assert m.weights_bytes == 7_869_736
    assert m.over_bytes == m.weights_bytes + m.live_bytes  # one device: no buffers
    roomy = CliRunner().invoke(main, [*args, "roomy"])
    assert "does not fit" not in roomy.output
    assert "memory: device 0 holds the most" in roomy.output
    assert "weights 7.5 MiB" in roomy.output  # 7,869,736 / 2^20 = 7.51
