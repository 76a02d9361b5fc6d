"""Device and link catalogs: YAML shipped with prismsim, plus the user's own files."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from prismsim.sim.specs import DeviceSpec, LinkSpec

M = TypeVar("M", bound=BaseModel)


class CatalogError(ValueError):
    """A catalog entry that does not validate; the message names file and key path."""


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise CatalogError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: expected a mapping of names to entries")
    return data


_TYPE_TAGS = {"int", "float", "str", "bool", "none", "dict", "function-after"}


def _key_path(prefix: str, loc: tuple) -> str:
    """("network", "bandwidth_mbps", "list[...]", 2) -> "network.bandwidth_mbps[2]"
    (pydantic's union-branch tags are left out)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not ("-" in part or "[" in part or part in _TYPE_TAGS):
            out += f".{part}" if out else str(part)
    return out


def validation_message(err: ValidationError, where: str, prefix: str) -> str:
    """One line per problem: ``file: key.path: message, got value``. Of a union field's
    branches, the one that got furthest (an item of a list) is the one reported."""
    found: dict[str, str] = {}
    for e in err.errors():
        got = "" if e["type"] in ("missing", "extra_forbidden") else f", got {e['input']!r}"
        found.setdefault(_key_path(prefix, e["loc"]), f"{e['msg']}{got}")
    keep = [k for k in found if not any(o.startswith(k + "[") for o in found)]
    return "\n".join(f"{where}: {k}: {found[k]}" for k in keep)


def _entries(data: dict[str, Any], model: type[M], where: str, prefix: str) -> dict[str, M]:
    out = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise CatalogError(f"{where}: {prefix}{name}: expected a mapping of fields")
        try:
            out[str(name)] = model(name=str(name), **fields)
        except ValidationError as err:
            raise CatalogError(validation_message(err, where, f"{prefix}{name}")) from None
    return out


def builtin_devices() -> dict[str, DeviceSpec]:
    text = files("prismsim.catalog").joinpath("devices.yaml").read_text()
    return _entries(_read_yaml(text, "devices.yaml"), DeviceSpec, "devices.yaml", "")


def builtin_links() -> dict[str, LinkSpec]:
    text = files("prismsim.catalog").joinpath("links.yaml").read_text()
    return _entries(_read_yaml(text, "links.yaml"), LinkSpec, "links.yaml", "")


def load_catalog(extra: Path | None = None) -> tuple[dict[str, DeviceSpec], dict[str, LinkSpec]]:
    """The shipped catalogs, with entries from ``extra`` (``devices:`` and ``links:``
    mappings) added or replacing shipped ones of the same name."""
    if extra is None:
        return builtin_devices(), builtin_links()
    return load_catalog_data(_read_yaml(Path(extra).read_text(), str(extra)), str(extra))


def load_catalog_data(data: dict[str, Any], where: str
                      ) -> tuple[dict[str, DeviceSpec], dict[str, LinkSpec]]:
    """The shipped catalogs plus the entries of ``data`` (e.g. a scenario's ``catalog:``)."""
    unknown = sorted(set(data) - {"devices", "links"})
    if unknown:
        raise CatalogError(f"{where}: unknown section(s) {unknown}; use devices: and links:")
    devices = builtin_devices() | _entries(data.get("devices") or {}, DeviceSpec, where,
                                           "devices.")
    links = builtin_links() | _entries(data.get("links") or {}, LinkSpec, where, "links.")
    return devices, links


def pick(catalog: dict[str, M], name: str, kind: str) -> M:
    try:
        return catalog[name]
    except KeyError:
        raise CatalogError(f"unknown {kind} {name!r}; known: {', '.join(sorted(catalog))}") \
            from None
