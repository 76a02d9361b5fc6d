"""A link whose rate changes over time, against transfers worked out by hand: a step up
in the middle of a message, an outage, a start offset, the latency and loss columns, a
looping Mahimahi trace; and what a broken trace file says."""

import re

import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.link_trace import LinkTrace, read_csv_trace, read_mahimahi
from prismsim.userfiles import UserFileError
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)
ONE_MB = Workload({}, [[Task("send", "m", 0, (0,))], [Task("recv", "r", 0, (0,))]], [
    Message(id=0, src=0, dst=(1,), broadcast=False, tag="m", shape=(250_000,),
            payload_bytes=1_000_000)])  # 8 Mbit


def _over(medium: str = "switched", **trace) -> float:
    """When 1 MB sent at 0 over a nominal 8 Mbit/s link under ``trace`` arrives."""
    link = LinkSpec(medium=medium, bandwidth_mbps=8, trace=LinkTrace(**trace))
    return simulate(ONE_MB, CPU, link).latency_s


@pytest.mark.parametrize("medium", ["switched", "shared", "mesh"])
def test_a_transfer_in_flight_sees_the_rate_change(medium):
    """4 Mbit go in the first 0.5 s at 8 Mbit/s, the other 4 at 16 Mbit/s: 0.75 s."""
    assert _over(medium, times_s=(0, 0.5), bandwidth_mbps=(8, 16)) == pytest.approx(0.75)


def test_an_outage_holds_the_bits_until_the_link_is_back():
    """2 Mbit by 0.25 s, nothing until 0.75 s, the last 6 Mbit in 0.75 s: 1.5 s."""
    assert _over(times_s=(0, 0.25, 0.75), bandwidth_mbps=(8, 0, 8)) == pytest.approx(1.5)


def test_the_trace_starts_where_it_is_told():
    assert _over(times_s=(0, 0.5), bandwidth_mbps=(8, 16), start_s=0.5) == pytest.approx(0.5)


def test_latency_and_loss_columns():
    """Half the packets lost: 4 Mbit/s of payload, 2 s; then the latency of that moment
    (20 ms from 1 s on) is added."""
    assert _over(times_s=(0, 1), bandwidth_mbps=(8, 8), loss=(0.5, 0.5),
                 latency_ms=(5, 20)) == pytest.approx(2.020)


def test_a_mahimahi_trace_is_read_as_rates_and_loops(tmp_path):
    """10 packets of 1,500 bytes in each of the first 10 ms (12 Mbit/s), none in the next
    10 (one packet, 1.2 Mbit/s): the trace repeats every 20 ms, 6.6 Mbit/s on average."""
    path = tmp_path / "link.down"
    path.write_text("\n".join(["0"] * 10 + ["19"]) + "\n")
    trace = read_mahimahi(path)
    assert trace.times_s == (0.0, 0.01) and trace.loop_s == 0.02
    assert trace.bandwidth_mbps == pytest.approx((12.0, 1.2))
    link = LinkSpec(bandwidth_mbps=8, trace=trace)
    # per 20 ms: 0.12 + 0.012 Mbit = 0.132; 8 Mbit: 60 periods (7.92) + 0.08 at 12 Mbit/s
    assert simulate(ONE_MB, CPU, link).latency_s == pytest.approx(60 * 0.02 + 0.08 / 12)


def test_a_csv_trace_reads_its_columns(tmp_path):
    path = tmp_path / "walk.csv"
    path.write_text("time_s,bandwidth_mbps,latency_ms\n0,8,2\n0.5,16,3\n")
    trace = read_csv_trace(path)
    assert trace.bandwidth_mbps == (8.0, 16.0) and trace.latency_ms == (2.0, 3.0)
    assert trace.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("time_s,bandwidth_mbps\n0,8\n1,4\n0.5,8\n", "times_s: time must increase"),
    ("time_s,bandwidth_mbps\n0,8\n1,-4\n", "bandwidth_mbps[1]: Input should be greater than "
                                           "or equal to 0"),
    ("time_s,bandwidth_mbps\n0,8\n1,0\n", "no bandwidth for ever"),
    ("time_s,bandwidth_mbps\n0,8\n1,fast\n", "row 3: bandwidth_mbps 'fast' is not a number"),
    ("time,rate\n0,8\n", "needs a header with time_s and bandwidth_mbps"),
    ("time_s,bandwidth_mbps\n1,8\n", "a trace starts at time 0"),
])
def test_a_broken_trace_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserFileError, match=re.escape(message)) as err:
        read_csv_trace(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_simulate_over_a_link_trace(tmp_path):
    path = tmp_path / "walk.csv"
    path.write_text("time_s,bandwidth_mbps\n0,1000\n0.005,5\n")
    args = ["simulate", "--model", "vit-tiny", "--strategy", "voltage", "--devices", "2"]
    steady = CliRunner().invoke(main, args)
    walked = CliRunner().invoke(main, [*args, "--link-trace", str(path)])
    late = CliRunner().invoke(main, [*args, "--link-trace", str(path), "--trace-start-s", "1"])
    assert walked.exit_code == late.exit_code == 0, walked.output + late.output

    def latency_ms(result) -> float:
        return float(result.output.splitlines()[1].split()[1])
    # gigabit, then 5 Mbit/s from 5 ms on: the later messages crawl
    assert latency_ms(steady) < latency_ms(walked) < latency_ms(late)
    assert f"over ethernet-1g under {path}" in walked.output


def test_requests_served_over_a_trace_see_the_rate_of_their_moment():
    """One message of 1 MB a request, one request a second: those sent while the link
    is at 8 Mbit/s take 1 s, those at 16 Mbit/s 0.5 s (the trace alternates every 2 s,
    so no request is replayed as the one-inference timeline of time 0)."""
    link = LinkSpec(bandwidth_mbps=8, trace=LinkTrace(times_s=(0, 2), bandwidth_mbps=(8, 16),
                                                      loop_s=4))
    result = serve(ServingSetup({1: ONE_MB}), [0.0, 1.0, 2.0, 3.0, 4.0], CPU, link)
    assert [r.finish_s - r.arrival_s for r in result.requests] == pytest.approx(
        [1.0, 1.0, 0.5, 0.5, 1.0])
