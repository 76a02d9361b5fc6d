"""The prismsim command line: thin wrappers over library functions."""

from __future__ import annotations

import click

from prismsim import __version__


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


def _emit(df, fmt: str) -> None:
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(df.to_string(index=False))


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
    from prismsim.strategies import STRATEGIES

    names = _split(strategies, str)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(STRATEGIES)}",
                                 param_hint="--strategy")
    try:
        df = check_numerics(model, names, _split(devices, int), _split(cr, float), batch, seed)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    _emit(df, fmt)
