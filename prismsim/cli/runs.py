"""Commands that simulate hardware: ``simulate`` (one inference), ``check`` and ``sweep``
(a scenario), ``plot`` (redraw a results folder), ``plan`` (which hardware to buy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from prismsim.cli.common import Greedy, emit, split_values, user_errors
from prismsim.progress import reporter


@click.command()
@click.option("--model", default="vit-base", show_default=True)
@click.option("--strategy", default="prism", show_default=True)
@click.option("--devices", "n_devices", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--cr", type=float, default=None, help="prism compression rate")
@click.option("--means", type=int, default=None, help="prism Segment Means per partition")
@click.option("--exchange", type=click.Choice(["p2p", "broadcast", "ring"]), default=None,
              help="voltage, prism: unicast copies (default), one broadcast, or an "
              "all_gather ring as torch.distributed runs it")
@click.option("--device", "device_names", cls=Greedy, multiple=True,
              default=("cpu-2core-2.1ghz",), show_default=True,
              help="device profile from the catalog; or one per device (heterogeneous)")
@click.option("--split", type=click.Choice(["equal", "speed"]), default="equal",
              show_default=True, help="token partitions equal, or in proportion to speed")
@click.option("--link", "link_name", default="ethernet-1g", show_default=True,
              help="link from the catalog")
@click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override the link's bandwidth")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
              help="override the link's one-way latency")
@click.option("--medium", type=click.Choice(["switched", "shared", "mesh"]), default=None,
              help="override the link's medium")
@click.option("--catalog", "catalog_file", type=click.Path(dir_okay=False), default=None,
              help="YAML with more devices: and links: entries")
@click.option("--host-cores", type=click.IntRange(min=1), default=None,
              help="every device a process on one machine with this many cores, sharing "
              "them (default: each device its own hardware)")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--tokens", type=click.IntRange(min=1), default=None)
@click.option("--wire", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32",
              show_default=True)
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), default=None,
              help="write the timeline as Chrome/Perfetto trace JSON")
@click.option("--generate", type=click.IntRange(min=1), default=None,
              help="causal LMs: generate this many tokens after the prompt (time to first "
              "token, time per output token, tokens/s)")
@click.option("--prompt-tokens", type=click.IntRange(min=1), default=None,
              help="the prompt's length with --generate (the same as --tokens)")
@click.option("--decode", "decode_mode", type=click.Choice(["split_kv", "local"]), default=None,
              help="voltage's decoding: split-KV over every device (default), or the last "
              "device alone")
@click.option("--link-trace", "link_trace", type=click.Path(dir_okay=False), default=None,
              help="the link's bandwidth over time: a CSV (time_s, bandwidth_mbps[, "
              "latency_ms, loss]) or a Mahimahi packet-delivery trace (any other name)")
@click.option("--trace-start-s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="the link trace's time at which the inference starts")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="also replay this many inferences, each drawing from the devices' and "
              "the link's variability (catalog `variability:`): the latency distribution")
@click.option("--seed", default=0, show_default=True, help="of the --samples draws")
@click.option("--cdf", "cdf_file", type=click.Path(dir_okay=False), default=None,
              help="with --samples: draw the latency CDF to this file (.png or .svg)")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16", "int8", "int4"]),
              default="fp32", show_default=True,
              help="the weights' precision: their memory, the bytes each step reads, the "
              "compute rate where the catalog gives one (activations stay fp32)")
@click.option("--events", "events_file", type=click.Path(dir_okay=False), default=None,
              help="YAML list of device events: {device, kind: slowdown, start_s, end_s, "
              "factor} or {device, kind: leave, start_s, end_s (None: never returns)}")
def simulate(model: str, strategy: str, n_devices: int, cr: float | None, means: int | None,
             exchange: str | None, device_names: tuple[str, ...], split: str, link_name: str,
             bandwidth_mbps: float | None, latency_ms: float | None, medium: str | None,
             catalog_file: str | None, host_cores: int | None, batch: int,
             tokens: int | None, wire: str, trace_file: str | None, generate: int | None,
             prompt_tokens: int | None, decode_mode: str | None, link_trace: str | None,
             trace_start_s: float, samples: int | None, seed: int, cdf_file: str | None,
             events_file: str | None, dtype: str) -> None:
    """Simulate one inference (or a prompt and the tokens generated after it): latency,
    energy, and where each device's time went; with --samples, its distribution."""
    from prismsim.point import simulate_point
    from prismsim.sim.precision import spec_at
    from prismsim.sim.specs import HostSpec

    tokens = _prompt_length(tokens, prompt_tokens, generate)
    options = {k: v for k, v in (("cr", cr), ("segments", means), ("exchange", exchange),
                                 ("decode", decode_mode)) if v is not None}
    overrides = {"bandwidth_mbps": bandwidth_mbps, "latency_ms": latency_ms, "medium": medium,
                 "trace": _link_trace(link_trace, trace_start_s)}
    host = HostSpec(cores=host_cores) if host_cores else None
    names, events = split_values(device_names, str), _events(events_file, n_devices)
    with user_errors(ValueError):
        specs, link = _hardware(catalog_file, names, link_name, overrides)
        specs = [spec_at(s, dtype) for s in specs]
        wl, result = simulate_point(model, strategy, n_devices,
                                    specs[0] if len(specs) == 1 else specs, link, batch=batch,
                                    tokens=tokens, wire=wire, record=trace_file is not None,
                                    split=split, host=host, generate=generate, events=events,
                                    dtype=dtype, **options)
    on = f"{n_devices} x {specs[0].name}" if len(specs) == 1 else " + ".join(names)
    _echo_result(wl, result, on, link, specs, events)
    if samples:
        _sampled(wl, specs, link, host, (samples, seed), cdf_file, result.latency_s, events)
    if trace_file:
        _write_trace(result, trace_file)


def _events(path: str | None, n_devices: int) -> list:
    """The device events a file holds, each naming one of the ``n_devices``."""
    if path is None:
        return []
    from prismsim.sim.device_events import check_events, read_events

    with user_errors():
        events = read_events(path)
        check_events(events, n_devices, path)
    return events


def _echo_result(wl: Any, result: Any, on: str, link: Any, specs: list, events: list
                 ) -> None:
    """The events, what was simulated and what it gave, and each device's table."""
    from prismsim.point import device_table, summary
    from prismsim.sim.memory import device_memory

    for event in events:
        click.echo(event.describe())
    info = summary(wl, result)
    _echo_point(info, on, "/".join(str(n) for n in wl.meta["sizes"]), link, result.lost)
    if wl.meta.get("generate") and not result.lost:
        _echo_decode(info)
    _echo_compute(specs)
    if wl.meta.get("dtype"):  # weights at another precision than fp32
        from prismsim.sim.precision import precision_note

        click.echo(f"precision: {precision_note(wl.meta['dtype'], specs)}")
    every = specs if len(specs) == wl.n_devices else specs[:1] * wl.n_devices  # one each
    memory = device_memory(wl, every)
    _echo_memory(memory, every)
    emit(device_table(result, memory), "table", digits=4)


def _echo_memory(memory: list, specs: list) -> None:
    """The fullest device's memory, and whether every device fits (which do not, by
    how much)."""
    from prismsim.sim.memory import overflow, size

    fullest = max(range(len(memory)), key=lambda p: memory[p].peak_bytes)
    m = memory[fullest]
    of = "" if m.capacity_bytes is None else f" of its {size(m.capacity_bytes)}"
    click.echo(f"memory: device {fullest} holds the most, {size(m.peak_bytes)}{of} "
               f"(weights {size(m.weights_bytes)}, fullest step {size(m.live_bytes)}, "
               f"buffers {size(m.buffers_bytes)}, runtime {size(m.runtime_bytes)})")
    over = overflow(memory, specs)
    if over:
        click.echo(f"does not fit: {over}")
    unknown = sorted({s.name for s, x in zip(specs, memory, strict=True) if x.fits is None})
    if not over and unknown:
        click.echo(f"fits: not known (the catalog gives no memory for {', '.join(unknown)})")


def _write_trace(result: Any, path: str) -> None:
    from prismsim.sim.timeline import write_chrome_trace

    with user_errors():
        write_chrome_trace(result, path)
    click.echo(f"timeline written to {path}")


def _echo_compute(specs: list) -> None:
    """How each kind of device's compute steps are timed."""
    for spec in {s.name: s for s in specs}.values():
        click.echo(f"compute: {spec.compute_model()}")


def _link_trace(path: str | None, start_s: float) -> Any:
    """The link trace a file holds (CSV by its name, else Mahimahi), from ``start_s``."""
    if path is None:
        return None
    from prismsim.sim.link_trace import read_link_trace

    with user_errors():
        return read_link_trace(Path(path), start_s)


def _hardware(catalog_file: str | None, names: list[str], link_name: str,
              overrides: dict[str, Any]) -> tuple[list, Any]:
    """The devices and the link picked from the catalogs, the link's values overridden."""
    from prismsim.sim.catalog import load_catalog, pick

    devices, links = load_catalog(catalog_file)
    link = pick(links, link_name, "link")
    return [pick(devices, name, "device") for name in names], link.model_copy(
        update={k: v for k, v in overrides.items() if v is not None})


def _sampled(wl: Any, specs: list, link: Any, host: Any, draws: tuple[int, int],
             cdf_file: str | None, mean_time_s: float, events: list) -> None:
    """The latency distribution of ``n`` sampled inferences (``draws``: n and the seed),
    and its CDF figure."""
    from prismsim.plots.cdf import latency_cdf
    from prismsim.plots.files import write_figure
    from prismsim.sim.sampling import sample_inferences

    if cdf_file and Path(cdf_file).suffix not in (".png", ".svg"):
        raise click.BadParameter(f"{cdf_file}: give a .png or .svg file", param_hint="--cdf")
    n, seed = draws
    with user_errors(ValueError):
        s = sample_inferences(wl, specs[0] if len(specs) == 1 else specs, link, n, seed, host,
                              events)
    info = s.summary()
    click.echo(f"{n} sampled inferences (seed {seed}): mean "
               f"{info['latency_mean_s'] * 1e3:.2f} ms, p50 {info['latency_p50_s'] * 1e3:.2f}"
               f", p95 {info['latency_p95_s'] * 1e3:.2f}, p99 {info['latency_p99_s'] * 1e3:.2f}"
               f" ms; energy {info['energy_mean_j']:.3f} J")
    if s.lost:
        click.echo(f"{s.lost} of {n} inferences lost (a device left for good before its "
                   f"part was done): their latency is inf")
    if not s.varies:
        click.echo("no device or link here has variability: every sample is the mean-time "
                   "replay (give `variability:` in a catalog, --catalog FILE)")
    if cdf_file:
        title = f"{wl.meta['model']} {wl.meta['strategy']} P={wl.n_devices} over {link.name}"
        with user_errors():
            write_figure(latency_cdf(s.latency_s, mean_time_s, title), Path(cdf_file))
        click.echo(f"latency CDF written to {cdf_file}")


def _echo_point(info: dict, on: str, sizes: str, link: Any, lost: str | None) -> None:
    """The two lines saying what was simulated and what it gave (or why it was lost)."""
    under = f" under {link.trace.source} from {link.trace.start_s:g} s" if link.trace else ""
    click.echo(f"{info['model']} {info['strategy']} on {on} (tokens {sizes}) over "
               f"{link.name}{under} ({link.medium}, {link.bandwidth_mbps:g} Mbit/s, "
               f"{link.latency_ms:g} ms)")
    if lost:
        click.echo(f"inference lost: {lost}")
        return
    click.echo(f"latency {info['latency_s'] * 1e3:.2f} ms   energy {info['energy_j']:.3f} J   "
               f"on air {info['bytes_on_air'] / 1e6:.3f} MB   "
               f"GFLOPs {info['gflops_total']:.2f} "
               f"(busiest device {info['gflops_per_device']:.2f})")


def _prompt_length(tokens: int | None, prompt_tokens: int | None, generate: int | None
                   ) -> int | None:
    if prompt_tokens is not None and generate is None:
        raise click.UsageError("--prompt-tokens goes with --generate (else use --tokens)")
    if prompt_tokens is not None and tokens not in (None, prompt_tokens):
        raise click.UsageError(f"--tokens {tokens} and --prompt-tokens {prompt_tokens} differ")
    return prompt_tokens or tokens


def _echo_decode(info: dict) -> None:
    """The per-token line of a generation."""
    tpot = info["tpot_s"]
    speed = (f"time per output token {tpot * 1e3:.2f} ms ({info['tokens_per_s']:.1f} "
             f"tokens/s)   " if tpot else "")
    click.echo(f"{info['generate']} tokens: time to first token {info['ttft_s'] * 1e3:.2f} ms"
               f"   {speed}energy {info['energy_per_token_j']:.4f} J/token   "
               f"sent {info['bytes_per_token'] / 1e3:.2f} KB/token")


def _scenario(path: str):  # type: ignore[no-untyped-def]
    from prismsim.scenario import load_scenario

    with user_errors():
        return load_scenario(path)


@click.command()
@click.argument("file", type=click.Path())
def check(file: str) -> None:
    """Validate a scenario and print the size of its grid."""
    from prismsim.sweep import exact
    from prismsim.sweep.needs import accuracy_need, distinct, finetune_need, workload_need

    s = _scenario(file)
    points = s.grid()
    n_wl = len({workload_need(s, p) for p in points})
    n_ft = len(distinct(finetune_need(s, p) for p in points))
    n_acc = len(exact.plan(distinct(accuracy_need(s, p) for p in points)).evaluate)
    tuned = f"{n_ft} fine-tunings, " if n_ft else ""
    click.echo(f"{file}: ok: {len(points)} points, {n_wl} workloads to trace, {tuned}"
               f"{n_acc} accuracy evaluations; results in {s.output}")
    reasons = sorted(set(s.skipped().values()))
    if reasons:
        click.echo(f"{len(s.skipped())} more points are skipped, each a row saying why: "
                   + "; ".join(reasons))


def _plot(out: Path, df) -> list[Path]:  # type: ignore[no-untyped-def]
    from prismsim.plots import save_all
    from prismsim.sweep.timeline import load_timeline

    timeline = load_timeline(out)
    spans, title = timeline if timeline else (None, "")
    return save_all(df, out, spans, title)


@click.command()
@click.argument("file", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: the scenario's output, or results/NAME]")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="processes tracing workloads and evaluating accuracy")
@click.option("--backend", "--executor", "backend", type=click.Choice(["local", "dask"]),
              default="local", show_default=True,
              help="where the tracing and evaluating run: local processes, or Dask "
                   "(--executor: its former name)")
@click.option("--scheduler", default=None, help="Dask scheduler address (default: a "
              "LocalCluster on this machine)")
@click.option("--fresh", is_flag=True, help="discard rows of an earlier run of this folder")
def sweep(file: str, output: str | None, jobs: int, backend: str, scheduler: str | None,
          fresh: bool) -> None:
    """Run every point of a scenario: results table, plots and a summary."""
    from prismsim.scenario.grid import MIX_SEPARATOR
    from prismsim.sweep.run import count_tasks, run_sweep
    from prismsim.sweep.summary import (
        fastest,
        indistinguishable,
        summarize,
        summary_heading,
    )

    s = _scenario(file)
    out = Path(output) if output else s.output
    with user_errors(ValueError, RuntimeError):
        with reporter(f"sweep {s.file.name}", count_tasks(s)) as progress:
            df = run_sweep(s, out, jobs=jobs, backend=backend, scheduler=scheduler,
                           fresh=fresh, progress=progress)
        written = _plot(out, df)
    click.echo(f"{len(df)} points -> {out / 'results.csv'}, {out / 'results.parquet'}, "
               f"{len(written)} plot files")
    names = df["device_profile"].dropna() if "device_profile" in df else []
    for name in sorted({part for n in names for part in str(n).split(MIX_SEPARATOR)}):
        click.echo(f"compute: {s.devices[name].compute_model()}")
    click.echo(summary_heading(df))
    emit(summarize(df), "table", digits=4)
    for pair in indistinguishable(fastest(df)):
        click.echo(f"accuracy of {pair}: 95 % intervals overlap (not told apart on these "
                   f"examples)")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
def plot(folder: str) -> None:
    """Redraw the plots of a results folder (no simulation)."""
    from prismsim.sweep.results import read_table

    out = Path(folder)
    with user_errors():
        written = _plot(out, read_table(out))
    click.echo("\n".join(str(p) for p in written))


@click.command()
@click.argument("file", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: the plan's output, or results/NAME]")
def plan(file: str, output: str | None) -> None:
    """Configurations meeting an accuracy floor and a latency SLO, cheapest first, and
    their Pareto front over cost, latency and energy (plan.csv, pareto.csv, plan.png)."""
    from prismsim.plan.file import load_plan
    from prismsim.plan.report import (
        front_line,
        headline,
        sampling_note,
        shown_columns,
        write_plan,
    )
    from prismsim.plan.search import count_steps, run_plan

    with user_errors():
        p = load_plan(file)
        with reporter("tracing and evaluating", count_steps(p)) as progress:
            result = run_plan(p, progress=progress)
        written = write_plan(result, Path(output) if output else p.output)
    offered = p.file.offered_load
    click.echo(headline(result, (offered.rate_per_s, offered.p99_ms) if offered else None))
    if note := sampling_note(result):
        click.echo(note)
    shown = shown_columns(result.table)
    if len(result.ranked):
        emit(result.ranked[shown], "table", digits=4)
        click.echo(front_line(result))
        emit(result.front[shown], "table", digits=4)
    else:
        click.echo("none: plan.csv's 'fails' column says what each one misses")
    click.echo(f"-> {', '.join(str(w) for w in written)}")


COMMANDS = (simulate, check, sweep, plot, plan)
