"""The ``prismsim`` group: every command, registered from its room."""

from __future__ import annotations

import click

from prismsim import __version__
from prismsim.cli import assets, finetune, model, real, runs, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prismsim")
def main() -> None:
    """prismsim: latency, energy, bytes and accuracy of one Transformer split over P devices."""


for _module in (model, finetune, runs, serve, assets, real):
    for _command in _module.COMMANDS:
        main.add_command(_command)
