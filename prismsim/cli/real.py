"""Commands of the real-network testbed: ``testbed clean``, ``profile-device``,
``validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from prismsim.cli.common import InputError, emit, user_errors
from prismsim.progress import reporter


@click.group()
def testbed() -> None:
    """The shaped network of namespaces that `validate` builds."""


@testbed.command("clean")
def testbed_clean() -> None:
    """Remove every namespace (and what runs in it) and CPU quota a testbed left behind."""
    from prismsim.testbed import cpu_quota
    from prismsim.testbed.network import TestbedError, clean

    try:
        removed, quotas = clean(), cpu_quota.clean()
    except (TestbedError, FileNotFoundError) as err:
        raise InputError(f"cannot clean: {err}") from None
    click.echo(f"removed {len(removed)} namespace(s)" + (f": {' '.join(removed)}"
                                                        if removed else ""))
    if quotas:
        click.echo(f"removed {len(quotas)} CPU quota group(s): {' '.join(quotas)}")


@click.command("profile-device")
@click.option("--model", default="vit-tiny", show_default=True,
              help="the model whose shapes are timed")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--max-procs", default=3, show_default=True, type=click.IntRange(min=1),
              help="measure the per-process rate with 1..N processes computing at once")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1),
              help="interleaved windows per process count; the median counts")
@click.option("--window-s", default=3.0, show_default=True, type=click.FloatRange(min=0.5),
              help="seconds each window lasts")
@click.option("--variability-s", default=60.0, show_default=True,
              type=click.FloatRange(min=0),
              help="seconds the probe stack is timed back to back for how the host's speed "
                   "moves (0: not measured)")
@click.option("--operators-only", is_flag=True,
              help="measure the operator table alone and write it as a file a catalog's "
                   "device entry names (operators: FILE)")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="torch threads of the operator table (--operators-only)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="results/profile.yaml",
              show_default=True)
def profile_device(model: str, batch: int, max_procs: int, rounds: int, window_s: float,
                   variability_s: float, operators_only: bool, threads: int, output: str
                   ) -> None:
    """Measure this host: FLOP rate per process under contention, operator table, GLOO
    message cost, what waking after a wait costs, how its speed moves."""
    from prismsim.profiling.host_profile import (
        catalog_entries,
        profile_host,
        save_profile,
        write_yaml,
    )

    if operators_only:
        return _operators_only(rounds, threads, Path(output))
    with user_errors(ValueError, RuntimeError):
        profile = profile_host(model, batch, max_procs=max_procs, window_s=window_s,
                               rounds=rounds, variability_s=variability_s)
        save_profile(profile, Path(output))
        catalog = Path(output).with_name(Path(output).stem + "-catalog.yaml")
        write_yaml(catalog_entries(profile), catalog)
    _say_profile(profile)
    click.echo(f"-> {output}; catalog entries -> {catalog} (--catalog {catalog})")


def _say_profile(profile: Any) -> None:
    """A measured profile in one line, and its warnings on stderr."""
    rates = ", ".join(f"{k} busy: {v:.1f} (windows within {100 * s:.0f} %)" for (k, v), s
                      in zip(profile.concurrent_gflops.items(),
                             profile.concurrent_spread.values(), strict=True))
    host_load = profile.load
    click.echo(f"GFLOP/s per process: {rates}; operator table passes within "
               f"{100 * profile.operators_spread:.0f} %; GLOO fixed cost "
               f"{profile.gloo_fixed_us:.0f} us; load average "
               f"{host_load.load_average_before:.2f} -> {host_load.load_average_after:.2f}, "
               f"{100 * host_load.cpu_stolen_share:.1f} % of CPU time stolen by other "
               f"machines")
    if (v := profile.speed_variability) is not None:
        slow = dict(v.slow)
        click.echo(f"speed over a request: p10 x{slow[0.1]:.3f}, p90 x{slow[0.9]:.3f}, p99 "
                   f"x{slow[0.99]:.3f} of the mean, holding about {v.slow_correlation_s:.2f} "
                   f"s; each step {100 * v.fast_cv:.1f} % CV")
    if profile.gloo_delay_us:
        delay = dict(profile.gloo_delay_us)
        click.echo(f"GLOO message delay beyond the least: median {delay[0.5]:.0f} us, p90 "
                   f"{delay[0.9]:.0f}, p99 {delay[0.99]:.0f}, most {delay[1.0]:.0f}")
    for warning in profile.warnings:
        click.echo(f"warning: {warning} (measured {profile.attempts} times)", err=True)


def _operators_only(rounds: int, threads: int, output: Path) -> None:
    import time

    from prismsim.profiling.host_profile import write_yaml
    from prismsim.profiling.operators import measure_operator_table

    when = time.strftime("%Y-%m-%d %H:%M:%S")
    table, spread = measure_operator_table(
        f"prismsim profile-device --operators-only {when}, {threads} torch thread(s)",
        rounds=rounds, threads=threads)
    with user_errors(OSError):
        write_yaml(table.model_dump(mode="json"), output)
    click.echo(f"operator table ({threads} thread(s)): passes within {100 * spread:.0f} %, "
               f"{len(table.mm)} products, {len(table.bmm)} batched products -> {output} "
               f"(a catalog device entry takes it as operators: {output.name})")


def _label(rows: list[dict]) -> str:
    r = rows[-1]
    return f"P={r['group']} {r['bandwidth_mbps']:g} Mbit/s {r['latency_ms']:g} ms"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: results/<file name>]")
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False), default=None,
              help="a profile-device file (default: the file's, or measure now)")
@click.option("--predict-only", is_flag=True,
              help="only the held-out prediction (operator table, host model, link): "
                   "never time the strategies' own steps")
@click.option("--predict-again", is_flag=True,
              help="no testbed: make the held-out predictions of the folder's rows again "
                   "with the current model (from the ping-pong and gauge they kept)")
@click.option("--load", "under_load", is_flag=True,
              help="serving under load instead: each strategy serves the file's seeded "
                   "Poisson trace (offered_load:) for real and in the simulator, held out")
@click.option("--dynamic", is_flag=True,
              help="a world that moves instead: the testbed replays the file's link trace "
                   "(dynamic:) under a request stream, an adaptive group choosing each "
                   "request's candidate; measured against the simulator, held out")
@click.option("--fresh", is_flag=True, help="discard the rows of an earlier run of this folder")
@click.option("--against", type=click.Path(exists=True, file_okay=False), default=None,
              help="an earlier run's results folder of the same grid: how far the two "
                   "measurements are apart (repeatability)")
def validate(file: str, output: str | None, profile_file: str | None, predict_only: bool,
             predict_again: bool, under_load: bool, dynamic: bool, fresh: bool,
             against: str | None) -> None:
    """Run a grid for real in the testbed and compare it with the simulator."""
    from prismsim.profiling.host_profile import load_profile
    from prismsim.testbed.network import TestbedError, terminate_as_interrupt
    from prismsim.testbed.runner import RunError
    from prismsim.validation import latency as val
    from prismsim.validation.file import load_validation_file
    from prismsim.validation.predict import PredictError

    out = Path(output) if output else Path("results") / Path(file).stem
    if against and not (Path(against) / "validation.csv").is_file():
        raise InputError(f"{against}: no validation.csv (--against takes a validate results "
                         f"folder)")
    with user_errors(TestbedError, RunError, PredictError):
        validation = load_validation_file(Path(file))
        chosen = profile_file or validation.profile
        profile = load_profile(Path(chosen)) if chosen else None
        if predict_again:
            table, _ = val.predict_again(validation, out)
            return _report(table, out, against)
        if under_load:
            return _validate_under_load(validation, Path(file).name, out, profile, fresh)
        if dynamic:
            return _validate_dynamic(validation, Path(file).name, out, profile, fresh)
        with reporter("validate", val.count_groups(validation)) as progress, \
                terminate_as_interrupt():
            table, _ = val.run_validation(validation, out, profile, fresh=fresh,
                                          progress=lambda rows: progress(_label(rows)),
                                          predict_only=predict_only)
    _report(table, out, against)


def _validate_under_load(validation: Any, name: str, out: Path, profile: Any,
                         fresh: bool) -> None:
    """``validate --load``: every configuration serving the file's offered loads."""
    from prismsim.testbed.network import terminate_as_interrupt
    from prismsim.testbed.runner import RealConfig
    from prismsim.validation import latency as val
    from prismsim.validation import under_load

    if validation.decode is not None:
        raise InputError(f"{name}: decode: serving under load runs one forward a request; "
                         f"leave out decode or --load")
    if validation.offered_load is None:
        raise InputError(f"{name}: offered_load: give the offered loads to serve (e.g. "
                         f"offered_load: {{load_factors: [0.3, 0.6, 1.2]}}) for --load")
    for table_name in ("validation_load.csv", "validation_load_requests.csv"):
        if fresh and (out / table_name).exists():
            (out / table_name).unlink()
    configs = [RealConfig(s.strategy, s.options) for s in validation.strategies]
    with reporter("validate --load", under_load.count_points(validation, configs)) as progress, \
            terminate_as_interrupt():
        prof = val.profile_for(validation, out, profile)
        table = under_load.run_load_validation(validation, out, prof, configs, progress)
    _report_under_load(table, out)


def _validate_dynamic(validation: Any, name: str, out: Path, profile: Any, fresh: bool
                      ) -> None:
    """``validate --dynamic``: the file's stream under its replayed link trace (a folder
    that has its table is reported again)."""
    import pandas as pd

    from prismsim.testbed.network import terminate_as_interrupt
    from prismsim.validation import dynamic
    from prismsim.validation import latency as val

    if validation.dynamic is None:
        raise InputError(f"{name}: dynamic: give the link trace and the candidates (e.g. "
                         f"dynamic: {{link_trace: steps.csv, candidates: [{{strategy: "
                         f"single}}, {{strategy: prism}}]}}) for --dynamic")
    if fresh and (out / dynamic.TABLE).exists():
        (out / dynamic.TABLE).unlink()
    if (out / dynamic.TABLE).exists():  # reported again from the folder, nothing run
        requests = pd.read_csv(out / dynamic.TABLE)
    else:
        click.echo(f"validate --dynamic: serving {validation.dynamic.requests} requests "
                   f"under the replayed trace (about "
                   f"{validation.dynamic.requests / validation.dynamic.rate_per_s:.0f} s)",
                   err=True)
        with terminate_as_interrupt():
            prof = val.profile_for(validation, out, profile)
            requests = dynamic.run_dynamic_validation(validation, out, prof)
    windows = dynamic.window_table(requests, validation.dynamic.window)
    emit(windows, "table", digits=3)
    for line in dynamic.dynamic_lines(requests, windows):
        click.echo(line)
    _plot_dynamic(requests, validation.dynamic.link_trace, out / "validation_dynamic.png")
    click.echo(f"-> {out / dynamic.TABLE}, {out / 'validation_dynamic.png'}")


def _plot_dynamic(requests: Any, trace_file: str, path: Path) -> None:
    """The trace above; each request's measured and predicted latency at its arrival,
    coloured by its choice (re-drawn from the table when the folder is reported again)."""
    import pandas as pd

    from prismsim.plots.dynamic import trace_and_choices
    from prismsim.plots.files import write_figure
    from prismsim.sim.link_trace import read_link_trace, trace_steps

    end_s = float(requests["arrival_s"].max())
    steps = trace_steps(read_link_trace(Path(trace_file)), end_s)
    trace = pd.DataFrame([*steps, (end_s, steps[-1][1])], columns=["time_s", "bandwidth_mbps"])
    drawn = pd.concat([pd.DataFrame({"label": name, "arrival_s": requests["arrival_s"],
                                     "latency_s": requests[f"{name}_latency_s"],
                                     "choice": requests[f"{name}_choice"]})
                       for name in ("measured", "predicted")])
    write_figure(trace_and_choices(trace, drawn, "validate --dynamic"), path)


def _report_under_load(table: Any, out: Path) -> None:
    """Each offered load's measured (median over its repeats, and their range) and
    predicted figures, and how close they are below the knee."""
    from prismsim.validation.under_load import FIGURES, LOAD, load_summary, summary_lines

    summary = load_summary(table)
    emit(summary[[*LOAD, "repeats", *(f"{w}_{f}" for f in FIGURES
                                      for w in ("measured", "predicted")),
                  "measured_latency_p99_s_low", "measured_latency_p99_s_high"]],
         "table", digits=3)
    for line in summary_lines(summary):
        click.echo(line)
    click.echo(f"-> {out / 'validation_load.csv'}")


def _report(table: Any, out: Path, against: str | None = None) -> None:
    from prismsim.validation import report as val
    from prismsim.validation.tails import tail_summary

    names = [n for n in ("predicted", "predicted_nominal", "simulated")
             if {f"{n}_ms", f"{n}_error_pct"} <= set(table) and table[f"{n}_ms"].notna().any()]
    val.scatter_plot(table, out / "validation.png", "predicted")
    emit(table[["strategy", "options", "devices", "bandwidth_mbps", "latency_ms",
                "measured_ms", *(f"{n}_{what}" for n in names for what in ("ms", "error_pct"))]],
         "table", digits=1)
    n = int((table["devices"] > 1).sum())
    for name, what in (("predicted", "held-out prediction (operator table, host, measured "
                                     "link)"),
                       ("predicted_nominal", "held-out, the link as set"),
                       ("simulated", "the strategies' own steps timed (not held out)")):
        if name in names:
            click.echo(f"{what}: MAPE {val.mape(table, name):.1f} %, "
                       f"{100 * val.share_within(table, name):.0f} % of points within "
                       f"+-10 %, mean signed {val.mean_signed(table, name):+.1f} % ({n} "
                       f"distributed points); one device alone "
                       f"{val.mean_signed(table, name, distributed=False):+.1f} %")
    if "measured_tpot_ms" in table:
        _report_tokens(table)
    if (tail := tail_summary(table)) is not None:
        click.echo(tail)
    if against:
        _repeatability(table, Path(against))
    click.echo(f"-> {out / 'validation.csv'}, {out / 'validation.png'}")


def _repeatability(table: Any, other: Path) -> None:
    """How far this run's measurements are from an earlier run's of the same grid."""
    import pandas as pd

    from prismsim.validation import report as val

    r = val.repeatability(table, pd.read_csv(other / "validation.csv"))
    click.echo(f"repeatability against {other}: measured latencies {r['mape']:.1f} % apart "
               f"(MAPE), {100 * r['within_10_share']:.0f} % of {r['points']} distributed "
               f"points within +-10 %, mean signed {r['mean_signed']:+.1f} %; CPU other "
               f"machines took: at most {r['stolen_max_pct']:.1f} % in a group of this run, "
               f"{r['other_stolen_max_pct']:.1f} % of that one")


def _report_tokens(table: Any) -> None:
    """A generation's time to first token and per output token, measured and predicted."""
    from prismsim.validation import report as val

    names = [n for n in ("predicted", "predicted_nominal", "simulated")
             if f"{n}_tpot_ms" in table and table[f"{n}_tpot_ms"].notna().any()]
    emit(table[["strategy", "options", "devices", "bandwidth_mbps", "latency_ms",
                "measured_ttft_ms", "predicted_ttft_ms", "measured_tpot_ms",
                *(f"{n}_tpot_{what}" for n in names for what in ("ms", "error_pct"))]],
         "table", digits=2)
    n = int((table["devices"] > 1).sum())
    for name in names:
        within = round(val.share_within(table, f"{name}_tpot", TPOT_LIMIT_PCT) * n)
        click.echo(f"time per output token, {name.replace('_', ' ')}: MAPE "
                   f"{val.mape(table, f'{name}_tpot'):.1f} %, {within} of {n} distributed "
                   f"points within +-{TPOT_LIMIT_PCT:g} %")


TPOT_LIMIT_PCT = 15.0  # the bound a time per output token is checked against


COMMANDS = (testbed, profile_device, validate)
