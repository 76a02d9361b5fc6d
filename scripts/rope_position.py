"""Which position a Segment Mean's key is rotated at, for a RoPE model under prism: bits
per byte of smollm2-135m on held-out Wikipedia XML for each ``rope_position``, at P = 2
and 3 and CR 2, 4, 8, beside one device. Prints a Markdown table.

    .venv/bin/python scripts/rope_position.py --limit 40 -p 2 -p 3
"""

from __future__ import annotations

import click

from prismsim.accuracy import evaluate
from prismsim.numerics.segments import ROPE_POSITIONS


@click.command()
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--dataset", default="wiki-xml", show_default=True)
@click.option("--limit", default=40, show_default=True, help="256-byte windows")
@click.option("--devices", "-p", multiple=True, type=int, default=(2, 3), show_default=True)
def main(model: str, dataset: str, limit: int, devices: tuple[int, ...]) -> None:
    single = evaluate(model, dataset, limit=limit)
    click.echo(f"single: {single['value']:.4f} bits per byte "
               f"({single['ci95_low']:.4f}-{single['ci95_high']:.4f}, {limit} windows)")
    click.echo(f"| P | CR | {' | '.join(ROPE_POSITIONS)} |")
    click.echo(f"|---|---|{'---|' * len(ROPE_POSITIONS)}")
    for p in devices:
        for cr in (2, 4, 8):
            values = [evaluate(model, dataset, "prism", p, limit=limit, cr=cr,
                               rope_position=where)["value"] for where in ROPE_POSITIONS]
            click.echo(f"| {p} | {cr} | {' | '.join(f'{v:.4f}' for v in values)} |")


if __name__ == "__main__":
    main()
