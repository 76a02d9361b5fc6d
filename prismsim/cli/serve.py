"""``prismsim serve``: request streams on simulated devices (throughput, tail latency,
capacity under an SLO)."""

from __future__ import annotations

from pathlib import Path

import click

from prismsim.cli.common import emit, user_errors
from prismsim.progress import reporter


@click.command()
@click.argument("file", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: the file's output, or results/NAME]")
@click.option("--fresh", is_flag=True, help="discard the runs of an earlier call")
@click.option("--plot-only", is_flag=True, help="redraw serving.png from the folder's "
              "summary.csv and capacity.csv (no simulation)")
def serve(file: str, output: str | None, fresh: bool, plot_only: bool) -> None:
    """Serve a request stream on each configuration of a serving file: throughput,
    p50/p95/p99 latency, drops, utilisation, energy per request, with 95 % intervals over
    replications, and the capacity within the SLO (runs.csv, summary.csv, capacity.csv,
    requests.parquet, serving.png)."""
    from prismsim.serve.file import load_serve
    from prismsim.serve.report import SHOWN, SHOWN_IF_ANY, replot, write_results
    from prismsim.serve.run import count_steps, run_serving

    with user_errors(FileNotFoundError):
        loaded = load_serve(file)
        out = Path(output) if output else loaded.output
        slo, title = loaded.file.serving.slo_p99_ms, loaded.file.description
        if plot_only:
            click.echo("\n".join(str(p) for p in replot(out, slo, title)))
            return
        with reporter(f"serve {loaded.file.name}", count_steps(loaded)) as progress:
            result = run_serving(loaded, out, progress, fresh=fresh)
        summary, written = write_results(out, result.runs, result.requests, result.capacity,
                                         slo, title, loaded.link, loaded.oracle_label())
    if len(summary):
        emit(summary[[c for c in (*SHOWN, *SHOWN_IF_ANY) if c in summary]], "table", digits=4)
    if result.capacity is not None:
        click.echo(f"capacity: the highest rate whose mean p99 over the replications is "
                   f"within {slo:g} ms:")
        emit(result.capacity, "table", digits=4)
    click.echo(f"-> {', '.join(str(w) for w in written)}")


COMMANDS = (serve,)
