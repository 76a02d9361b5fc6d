"""Commands of the real-network testbed: ``testbed clean``, ``profile-device``,
``validate``."""

from __future__ import annotations

from pathlib import Path

import click

from prismsim.cli.common import InputError, emit, user_errors
from prismsim.progress import reporter


@click.group()
def testbed() -> None:
    """The shaped network of namespaces that `validate` builds."""


@testbed.command("clean")
def testbed_clean() -> None:
    """Remove every namespace (and what runs in it) a testbed left behind."""
    from prismsim.realrun.testbed import TestbedError, clean

    try:
        removed = clean()
    except (TestbedError, FileNotFoundError) as err:
        raise InputError(f"cannot clean: {err}") from None
    click.echo(f"removed {len(removed)} namespace(s)" + (f": {' '.join(removed)}"
                                                        if removed else ""))


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
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="results/profile.yaml",
              show_default=True)
def profile_device(model: str, batch: int, max_procs: int, rounds: int, window_s: float,
                   output: str) -> None:
    """Measure this host: FLOP rate per process under contention, operator table, GLOO
    message cost."""
    from prismsim.realrun.profile import catalog_entries, profile_host, save_profile

    with user_errors(ValueError, RuntimeError):
        profile = profile_host(model, batch, max_procs=max_procs, window_s=window_s,
                               rounds=rounds)
        save_profile(profile, Path(output))
        catalog = Path(output).with_name(Path(output).stem + "-catalog.yaml")
        save_profile(catalog_entries(profile), catalog)
    rates = ", ".join(f"{k} busy: {v:.1f} (windows within {100 * s:.0f} %)" for (k, v), s
                      in zip(profile["concurrent_gflops"].items(),
                             profile["concurrent_spread"].values(), strict=True))
    load = profile["load"]
    click.echo(f"GFLOP/s per process: {rates}; operator table passes within "
               f"{100 * profile['operators_spread']:.0f} %; GLOO fixed cost "
               f"{profile['gloo_fixed_us']:.0f} us; load average "
               f"{load['load_average_before']:.2f} -> {load['load_average_after']:.2f}, "
               f"{100 * load['cpu_stolen_share']:.1f} % of CPU time stolen by other machines")
    for warning in profile["warnings"]:
        click.echo(f"warning: {warning} (measured {profile['attempts']} times)", err=True)
    click.echo(f"-> {output}; catalog entries -> {catalog} (--catalog {catalog})")


def _label(rows: list[dict]) -> str:
    r = rows[-1]
    return f"P={r['group']} {r['bandwidth_mbps']:g} Mbit/s {r['latency_ms']:g} ms"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="results folder [default: results/<file name>]")
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False), default=None,
              help="a profile-device file (default: the file's, or measure now)")
@click.option("--fresh", is_flag=True, help="discard the rows of an earlier run of this folder")
def validate(file: str, output: str | None, profile_file: str | None, fresh: bool) -> None:
    """Run a grid for real in the testbed and compare it with the simulator."""
    from prismsim.realrun import validate as val
    from prismsim.realrun.runner import RunError
    from prismsim.realrun.testbed import TestbedError, terminate_as_interrupt

    out = Path(output) if output else Path("results") / Path(file).stem
    with user_errors(TestbedError, RunError):
        spec = val.load_spec(Path(file))
        chosen = profile_file or spec.profile
        profile = val.load_profile(Path(chosen)) if chosen else None
        with reporter("validate", val.count_groups(spec)) as progress, \
                terminate_as_interrupt():
            table, _ = val.run_validation(spec, out, profile, fresh=fresh,
                                          progress=lambda rows: progress(_label(rows)))
        val.scatter_plot(table, out / "validation.png")
    emit(table[["strategy", "options", "devices", "bandwidth_mbps", "latency_ms",
                "measured_ms", "simulated_ms", "error_pct"]], "table", digits=1)
    click.echo(f"MAPE (distributed points): {val.mape(table):.1f} % with the link as "
               f"measured in the testbed, {val.mape(table, 'error_nominal_pct'):.1f} % with "
               f"the nominal link; {int((table['devices'] > 1).sum())} points -> "
               f"{out / 'validation.csv'}, {out / 'validation.png'}")


COMMANDS = (testbed, profile_device, validate)
