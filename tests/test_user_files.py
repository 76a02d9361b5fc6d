"""Whatever a user's file holds, every command that reads it ends with one line naming the
file and exit code 2, never a traceback."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prismsim.cli.main import main
from prismsim.userfiles import MAX_DEPTH, MAX_FILE_BYTES, UserFileError, parse_yaml

SCENARIO = Path("scenarios/tiny_vit.yaml").read_text()

# name -> bytes of a malformed file, one of each kind
BAD = {
    "deep_list": b"x: " + b"[" * 5000 + b"]" * 5000,
    "deep_map": b"x: " + b"{a: " * 3000 + b"1" + b"}" * 3000,
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(300)).encode(),
    "alias_bomb": b"a: &a [x,x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
        for p, c in zip("abcdefg", "bcdefgh", strict=True)),
    "recursive_alias": b"a: &a [1, *a]\n",
    "not_utf8": b"name: caf\xe9\n",
    "nul_byte": b"name: a\x00b\n",
    "binary": bytes(range(256)) * 4,
    "a_list": b"- 1\n- 2\n",
    "a_string": b"just words\n",
    "huge_int": b"name: x\nbatch: " + b"9" * 5000 + b"\n",
    "bad_date": b"name: 2025-13-45 10:00:00\n",
    "tab_indent": b"name:\n\t- x\n",
    "two_documents": b"name: a\n---\nname: b\n",
    "undefined_alias": b"name: *nowhere\n",
    "python_tag": b"name: !!python/object/apply:os.system [ls]\n",
    "wrong_types": b"name: [1, 2]\nmodel: 5\nstrategies: {a: b}\ndevices: []\n",
    "unknown_key": SCENARIO.encode() + b"colour: red\n",
}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    return path


def _one_line_error(result, path: Path) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert path.name in errors[0], errors[0]


def _commands(path: Path, tmp_path: Path, good: Path) -> dict[str, list[str]]:
    out = str(tmp_path / "out")
    return {
        "check": ["check", str(path)],
        "sweep": ["sweep", str(path), "-o", out],
        "plan": ["plan", str(path), "-o", out],
        "catalog": ["simulate", "--model", "vit-tiny", "--catalog", str(path)],
        "validate": ["validate", str(path), "-o", out],
        "profile": ["validate", str(good), "--profile", str(path), "-o", out],
    }


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("command", ["check", "sweep", "plan", "catalog", "validate",
                                     "profile"])
def test_a_malformed_file_is_one_line(tmp_path, kind, command):
    path = _write(tmp_path, kind, BAD[kind])
    good = tmp_path / "grid.yaml"
    good.write_text("strategies: [{strategy: voltage}]\n")
    args = _commands(path, tmp_path, good)[command]
    _one_line_error(CliRunner().invoke(main, args), path)


def test_too_large_and_missing_files_and_folders(tmp_path):
    big = _write(tmp_path, "big", b"name: " + b"x" * (MAX_FILE_BYTES + 1) + b"\n")
    _one_line_error(CliRunner().invoke(main, ["check", str(big)]), big)
    missing = tmp_path / "missing.yaml"
    _one_line_error(CliRunner().invoke(main, ["plan", str(missing)]), missing)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    _one_line_error(CliRunner().invoke(main, ["check", str(folder)]), folder)


def test_the_reader_says_what_is_wrong():
    """The bounds, by hand: depth MAX_DEPTH passes, one more does not; aliases count each
    use (10 x 10 x ... values); a recursive alias is named as such."""
    assert parse_yaml("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "f") is not None
    with pytest.raises(UserFileError, match=f"f: not valid YAML: .*deeper than {MAX_DEPTH}"):
        parse_yaml("x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, "f")
    with pytest.raises(UserFileError, match="expand to more than 200,000"):
        parse_yaml(BAD["alias_bomb"].decode(), "f")
    assert parse_yaml("a: &x [1, 2]\nb: *x", "f") == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(UserFileError, match="refers to the value that contains it"):
        parse_yaml("a: &a {b: *a}", "f")


def test_damaged_results_folders_are_one_line(tmp_path):
    for name, csv, timeline in [
            ("garbage", b"\x00\xff\xfe" * 100, None),
            ("foreign", b"a,b\n1,2\n", None),
            ("empty", b"", None),
            ("bad_timeline", None, b"{not json"),
            ("foreign_timeline", None, b'{"spans": 3}'),
            ("deep_timeline", None, b"[" * 100_000 + b"]" * 100_000)]:
        folder = tmp_path / name
        folder.mkdir()
        if csv is not None:
            (folder / "results.csv").write_bytes(csv)
        else:
            (folder / "results.csv").write_text(
                "strategy,devices,bandwidth_mbps,latency_s\nsingle,1,200,0.1\n")
            (folder / "timeline.json").write_bytes(timeline)
        result = CliRunner().invoke(main, ["plot", str(folder)])
        _one_line_error(result, folder)


def test_a_damaged_measured_map_is_one_line(tmp_path):
    (tmp_path / "map.csv").write_bytes(b"strategy,devices\nprism,two\n\x00\n")
    text = SCENARIO.replace("strategies: [single, voltage, prism]",
                            "strategies: [single, prism]")
    path = tmp_path / "adaptive.yaml"
    path.write_text(text + "adaptive: {map_csv: map.csv}\n")
    _one_line_error(CliRunner().invoke(main, ["check", str(path)]), path)


# Random documents: any mix of values under the scenario's own keys and others.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.text(string.printable, max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(string.ascii_lowercase, max_size=8),
                                                inner, max_size=4)), max_leaves=20)
_keys = st.sampled_from(["name", "model", "dataset", "strategies", "devices", "prism",
                         "network", "batch", "wire", "output", "timeline", "catalog",
                         "adaptive", "junk"])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(_keys, _values, max_size=8), base=st.booleans())
def test_random_scenarios_never_crash(tmp_path, doc, base):
    data = {**(yaml.safe_load(SCENARIO) if base else {}), **doc}
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exit_code == 0 or isinstance(result.exception, SystemExit), result.exception
