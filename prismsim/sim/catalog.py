"""Device and link catalogs: YAML shipped with prismsim, plus the user's own files
(``--catalog FILE``, a scenario's inline ``catalog:``).

A device's ``operators:`` (its measured operator table, ``cost/op_table.py``) is given
inline or as the name of a YAML file beside the catalog that names it (the shipped
catalog's tables are package data; a user catalog's, or a scenario's inline catalog's,
are found beside that file); ``prismsim profile-device --operators-only`` writes one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.userfiles import UserFileError, parse_yaml, read_mapping, validate

M = TypeVar("M", bound=BaseModel)


class CatalogError(UserFileError):
    """A catalog entry that does not validate; the message names file and key path."""


Tables = Callable[[str, str], Any]  # (file name, where it is named) -> the table's fields


def _entries(data: Any, model: type[M], where: str, prefix: str,
             tables: Tables | None = None) -> dict[str, M]:
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: {prefix.rstrip('.') or 'catalog'}: expected a mapping "
                           f"of names to entries")
    out = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise CatalogError(f"{where}: {prefix}{name}: expected a mapping of fields")
        if tables and isinstance(fields.get("operators"), str):
            fields = {**fields, "operators": tables(fields["operators"],
                                                    f"{where}: {prefix}{name}.operators")}
        out[str(name)] = validate(model, fields, where, f"{prefix}{name}", CatalogError,
                                  name=str(name))
    return out


def _shipped_table(filename: str, where: str) -> Any:
    try:
        text = files("prismsim.catalog").joinpath(filename).read_text()
    except OSError:
        raise CatalogError(f"{where}: no shipped operator table {filename!r}") from None
    return parse_yaml(text, filename)


def _tables_beside(base: Path) -> Tables:
    """Operator tables named by a user's catalog: files beside it."""
    def read(filename: str, where: str) -> Any:
        try:
            return read_mapping(base / filename, "operator table fields")
        except UserFileError as err:
            raise CatalogError(f"{where}: {err}") from None
    return read


@functools.cache
def _shipped(filename: str, model: type[M]) -> dict[str, M]:
    text = files("prismsim.catalog").joinpath(filename).read_text()
    return _entries(parse_yaml(text, filename) or {}, model, filename, "", _shipped_table)


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
    return load_catalog_data(data, str(extra), Path(extra).parent)


def load_catalog_data(data: dict[str, Any], where: str, base: Path = Path(".")
                      ) -> tuple[dict[str, DeviceSpec], dict[str, LinkSpec]]:
    """The shipped catalogs plus the entries of ``data`` (e.g. a scenario's ``catalog:``);
    operator tables named by file are read from ``base``."""
    unknown = sorted(map(str, set(data) - {"devices", "links"}))
    if unknown:
        raise CatalogError(f"{where}: unknown section(s) {unknown}; use devices: and links:")
    devices = builtin_devices() | _entries(data.get("devices") or {}, DeviceSpec, where,
                                           "devices.", _tables_beside(base))
    links = builtin_links() | _entries(data.get("links") or {}, LinkSpec, where, "links.")
    return devices, links


def pick(catalog: dict[str, M], name: str, kind: str) -> M:
    try:
        return catalog[name]
    except KeyError:
        raise CatalogError(f"unknown {kind} {name!r}; known: {', '.join(sorted(catalog))}") \
            from None
