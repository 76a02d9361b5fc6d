"""What the commands share: multi-value options, table output, and turning bad input into
one line on stderr with exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from prismsim.strategies import SKIPPED, STRATEGIES
from prismsim.userfiles import UserFileError


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


def split_values(values: tuple[str, ...], kind: type) -> list:
    """``--x 2 --x 3`` and ``--x 2,3`` both give [2, 3]."""
    out = []
    for v in values:
        for part in v.replace(",", " ").split():
            try:
                out.append(kind(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a valid {kind.__name__}") from None
    return out


def strategy_names(values: tuple[str, ...]) -> list[str]:
    names = split_values(values, str)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(STRATEGIES)}",
                                 param_hint="--strategy")
    return names


FORMATS = ("table", "csv", "json")


def emit(df: Any, fmt: str = "table", digits: int = 2) -> None:
    """A DataFrame on stdout: a rounded table, CSV or JSON records. A table leaves the
    ``skipped`` cell of a row that ran blank."""
    if fmt == "table":
        df = df.round(digits)
        if SKIPPED in df:
            df = df.fillna({SKIPPED: ""})
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(df.to_string(index=False))


class InputError(click.ClickException):
    """Bad input (unknown name, invalid value, a file that cannot be used): one line,
    exit code 2 like usage errors."""

    exit_code = 2


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Errors a user can fix, as one line and exit code 2: any problem with a file they
    gave (UserFileError), the ``kinds`` a command names, and a folder or file it cannot
    write."""
    try:
        yield
    except (UserFileError, *kinds) as err:
        raise InputError(str(err) or type(err).__name__) from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise InputError(f"{where}{err.strerror or err}") from None
