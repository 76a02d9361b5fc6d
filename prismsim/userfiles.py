"""Files users write (scenarios, plans, catalogs, validation grids, profiles): one strict
model base and one bounded YAML reader, so that whatever a file holds, reading it ends in
a value or in one line naming the file and what is wrong with it.

The reader refuses, before pydantic sees anything: files over ``MAX_FILE_BYTES``, bytes
that are not UTF-8, nesting deeper than ``MAX_DEPTH`` (PyYAML composes recursively, so a
file of a few thousand ``[`` would otherwise end in a RecursionError), anchors whose
aliases expand to more than ``MAX_VALUES`` values (a "billion laughs" file is a few
lines), recursive aliases, and a top level that is not a mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError

MAX_FILE_BYTES = 4 << 20  # 4 MiB: the largest ready scenario is under 2 KB
MAX_DEPTH = 64  # nesting levels: scenario keys go 4 deep
MAX_VALUES = 200_000  # values after expanding aliases: grids are hundreds of points
MAX_INPUT_CHARS = 60  # of an offending value quoted in an error


class UserFileError(ValueError):
    """A user's file that cannot be used; the message is one line naming the file."""


class StrictModel(BaseModel):
    """Base of every schema read from a user's file: unknown keys are errors (a typo is
    never silently ignored) and values are frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def renamed_key(name: str, old: str) -> AliasChoices:
    """A field read under its name or, from files written before it was renamed, ``old``."""
    return AliasChoices(name, old)


M = TypeVar("M", bound=BaseModel)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a cap on nesting while composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(problem=f"nested deeper than {MAX_DEPTH} levels",
                                           problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values ``node`` stands for once every alias is expanded (memoized per node, so a
    shared node costs its size at each use but is walked once)."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise yaml.YAMLError("an alias refers to the value that contains it")
        return sizes[key]
    sizes[key] = -1  # being walked: meeting it again is a cycle
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[key] = min(total, MAX_VALUES + 1)
    return sizes[key]


def _one_line(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as "line L, column C: problem"."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return where + (err.problem or err.context or "invalid")
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> Python values, bounded as the module says; errors name ``where``."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # its reader refuses non-printable characters
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_VALUES:
            raise yaml.YAMLError(f"aliases expand to more than {MAX_VALUES:,} values")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise UserFileError(f"{where}: not valid YAML: {_one_line(err)}") from None
    except (ValueError, OverflowError, TypeError) as err:  # a scalar PyYAML cannot build
        raise UserFileError(f"{where}: not valid YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:  # deep structure through a path the depth cap does not see
        raise UserFileError(f"{where}: not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: Path, where: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A user's file as text: exists, at most ``max_bytes``, UTF-8."""
    where = where or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UserFileError(f"{where}: {size:,} bytes; files over "
                                f"{max_bytes:,} bytes are refused")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserFileError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UserFileError(f"{where}: is a folder, not a file") from None
    except OSError as err:
        raise UserFileError(f"{where}: cannot read: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserFileError(f"{where}: not UTF-8 text (byte {err.start})") from None


def read_mapping(path: Path, what: str = "fields", where: str | None = None
                 ) -> dict[str, Any]:
    """A YAML file whose top level must be a mapping (an empty file is an empty one)."""
    where = where or str(path)
    data = parse_yaml(read_text(path, where), where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserFileError(f"{where}: expected a mapping of {what}, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), f"a {type(value).__name__}")


# ---------------------------------------------------------------- validation errors

_TYPE_TAGS = {"int", "float", "str", "bool", "none", "dict", "function-after"}


def key_path(prefix: str, loc: tuple) -> str:
    """("network", "bandwidth_mbps", "list[...]", 2) -> "network.bandwidth_mbps[2]"
    (pydantic's union-branch tags are left out; tags that name a branch hold a "-")."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not ("-" in part or "[" in part or part in _TYPE_TAGS):
            out += f".{part}" if out else str(part)
    return out


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_INPUT_CHARS else text[:MAX_INPUT_CHARS - 1] + "…"


def validation_message(err: ValidationError, where: str, prefix: str = "",
                       most: int = 3) -> str:
    """One line: ``file: key.path: message, got value`` for each problem (the first
    ``most`` of them, then how many more), joined by "; ". Of a union field's branches,
    the one that got furthest (an item of a list) is the one reported."""
    found: dict[str, str] = {}
    for e in err.errors():
        if not e["loc"] and e["type"] == "value_error":  # a check of the whole: it names
            message = e["msg"].removeprefix("Value error, ")  # its keys; the input is all
            found.setdefault(key_path(prefix, e["loc"]), message)
            continue
        got = "" if e["type"] in ("missing", "extra_forbidden") else f", got {_quoted(e['input'])}"
        found.setdefault(key_path(prefix, e["loc"]), f"{e['msg']}{got}")
    keep = [k for k in found if not any(o.startswith(k + "[") for o in found)]
    parts = [f"{k + ': ' if k else ''}{found[k]}" for k in keep[:most]]
    more = f" (and {len(keep) - most} more)" if len(keep) > most else ""
    return f"{where}: {'; '.join(parts)}{more}"


def validate(model: type[M], data: Any, where: str, prefix: str = "",
             error: type[UserFileError] = UserFileError, **extra: Any) -> M:
    """``model(**data, **extra)``, its errors as one line naming ``where``."""
    try:
        return model.model_validate({**data, **extra} if extra else data)
    except ValidationError as err:
        raise error(validation_message(err, where, prefix)) from None


def load_model_file(path: Path | str, model: type[M], what: str,
                    error: type[UserFileError] = UserFileError) -> M:
    """Read, parse and validate a user's YAML file against ``model``; every failure is
    ``error`` with one line naming the file (by its name, as users refer to it)."""
    path = Path(path)
    try:
        data = read_mapping(path, what, path.name)
    except UserFileError as err:
        raise error(str(err)) from None
    return validate(model, data, path.name, error=error)
