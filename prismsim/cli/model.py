"""Commands about the model and its split, no hardware: ``numerics`` (exactness against
the HF forward), ``flops`` (the paper's Tables IV-VI), ``accuracy`` (on real data)."""

from __future__ import annotations

import click

from prismsim.cli.common import FORMATS, Greedy, emit, split_values, strategy_names, user_errors
from prismsim.progress import reporter


@click.command()
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def numerics(model: str, strategies: tuple[str, ...], devices: tuple[str, ...],
             cr: tuple[str, ...], batch: int, seed: int, fmt: str) -> None:
    """Run each strategy's per-device programs and compare with the HF model's own forward."""
    from prismsim.executors.exactness import check_numerics

    names = strategy_names(strategies)
    with user_errors(ValueError):
        df = check_numerics(model, names, split_values(devices, int), split_values(cr, float),
                            batch, seed)
    emit(df, fmt)


@click.command()
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def flops(models: tuple[str, ...], tokens: int | None, strategies: tuple[str, ...],
          devices: tuple[str, ...], means: tuple[str, ...], cr: tuple[str, ...], batch: int,
          wire: str, causal_counts: tuple[str, ...], fmt: str) -> None:
    """FLOPs and communication of each strategy, traced from its per-device programs
    (the paper's Tables IV-VI). Workloads are cached on disk ($PRISMSIM_CACHE_DIR)."""
    from prismsim.flops_table import CAUSAL_COUNTS, count_points, flops_table

    names, counts = strategy_names(strategies), split_values(causal_counts, str)
    bad = [c for c in counts if c not in CAUSAL_COUNTS]
    if bad:
        raise click.BadParameter(f"{bad}; choose from {sorted(CAUSAL_COUNTS)}",
                                 param_hint="--causal-count")
    seg_values, cr_values = split_values(means, int), split_values(cr, float)
    if not seg_values and not cr_values:
        seg_values = [10, 20, 30]
    model_names, p_values = split_values(models, str), split_values(devices, int)
    with user_errors(ValueError):
        total = count_points(model_names, names, p_values, seg_values, cr_values, counts)
        with reporter("tracing workloads", total) as progress:
            df = flops_table(model_names, names, p_values, means=seg_values, crs=cr_values,
                             tokens=tokens, batch=batch, wire=wire, causal_counts=counts,
                             progress=progress)
    emit(df, fmt)


@click.command()
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def accuracy(model: str, dataset: str | None, split: str, strategies: tuple[str, ...],
             devices: tuple[str, ...], cr: tuple[str, ...], limit: int, batch: int,
             fmt: str) -> None:
    """Task metric and fidelity to the exact model of each strategy, on real data."""
    from prismsim.accuracy import accuracy_table
    from prismsim.assets import AssetError
    from prismsim.configuration import command_configurations, prism_settings

    names, p_values, crs = strategy_names(strategies), split_values(devices, int), \
        split_values(cr, float)
    total = len(command_configurations(names, p_values, prism_settings(crs)))
    with user_errors(AssetError, ValueError), reporter("evaluating", total) as progress:
        df = accuracy_table(model, dataset, names, p_values, crs, split=split, limit=limit,
                            batch=batch, progress=progress)
    if fmt == "table":  # the long provenance once, under the table (none: skipped rows)
        sources = df.pop("accuracy_source").dropna().unique()
        emit(df, fmt, digits=4)
        click.echo("accuracy source: " + "; ".join(sources))
    else:
        emit(df, fmt)


COMMANDS = (numerics, flops, accuracy)
