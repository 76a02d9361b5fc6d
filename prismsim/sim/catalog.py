"""Device and link catalogs: YAML shipped with prismsim, plus the user's own files
(``--catalog FILE``, a scenario's inline ``catalog:``)."""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.userfiles import UserFileError, parse_yaml, read_mapping, validate

M = TypeVar("M", bound=BaseModel)


class CatalogError(UserFileError):
    """A catalog entry that does not validate; the message names file and key path."""


def _entries(data: Any, model: type[M], where: str, prefix: str) -> dict[str, M]:
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: {prefix.rstrip('.') or 'catalog'}: expected a mapping "
                           f"of names to entries")
    out = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise CatalogError(f"{where}: {prefix}{name}: expected a mapping of fields")
        out[str(name)] = validate(model, fields, where, f"{prefix}{name}", CatalogError,
                                  name=str(name))
    return out


@functools.cache
def _shipped(filename: str, model: type[M]) -> dict[str, M]:
    text = files("prismsim.catalog").joinpath(filename).read_text()
    return _entries(parse_yaml(text, filename) or {}, model, filename, "")


def builtin_devices() -> dict[str, DeviceSpec]:
    return dict(_shipped("devices.yaml", DeviceSpec))


def builtin_links() -> dict[str, LinkSpec]:
    return dict(_shipped("links.yaml", LinkSpec))


def load_catalog(extra: Path | str | None = None
                 ) -> tuple[dict[str, DeviceSpec], dict[str, LinkSpec]]:
    """The shipped catalogs, with entries from ``extra`` (``devices:`` and ``links:``
    mappings) added or replacing shipped ones of the same name."""
    if extra is None:
        return builtin_devices(), builtin_links()
    try:
        data = read_mapping(Path(extra), "catalog sections (devices:, links:)")
    except UserFileError as err:
        raise CatalogError(str(err)) from None
    return load_catalog_data(data, str(extra))


def load_catalog_data(data: dict[str, Any], where: str
                      ) -> tuple[dict[str, DeviceSpec], dict[str, LinkSpec]]:
    """The shipped catalogs plus the entries of ``data`` (e.g. a scenario's ``catalog:``)."""
    unknown = sorted(map(str, set(data) - {"devices", "links"}))
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
