"""The shipped device and link catalogs, and user catalog files."""

import pytest

from prismsim.sim.catalog import CatalogError, builtin_devices, builtin_links, load_catalog


def test_every_entry_cites_its_source():
    for spec in [*builtin_devices().values(), *builtin_links().values()]:
        assert len(spec.source) > 40, spec.name


def test_catalog_arithmetic():
    devices, links = builtin_devices(), builtin_links()
    # 2 cores x 2.1 GHz x 64 FLOP/cycle (AVX-512, two FMA units)
    assert devices["cpu-2core-2.1ghz"].peak_gflops == pytest.approx(2 * 2.1 * 64)
    # 1024 CUDA cores x 2 FLOP x 0.625 GHz
    assert devices["jetson-orin-nano-8gb-15w"].peak_gflops == pytest.approx(1024 * 2 * 0.625)
    assert links["ethernet-1g"].bits_per_s == pytest.approx(1e9 * 1448 / 1538, rel=1e-4)
    assert {"wifi4", "wifi5", "wifi6", "5g", "ethernet-100m"} <= set(links)


def test_user_file_adds_and_replaces(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("devices:\n  board:\n    peak_gflops: 10\n"
                 "links:\n  ethernet-1g:\n    bandwidth_mbps: 10\n")
    devices, links = load_catalog(f)
    assert devices["board"].peak_gflops == 10
    assert links["ethernet-1g"].bandwidth_mbps == 10
    assert "raspberry-pi-5" in devices


def test_bad_entries_name_file_and_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("links:\n  lan:\n    bandwidth_mbps: -5\n")
    with pytest.raises(CatalogError, match=r"bad.yaml: links.lan.bandwidth_mbps: .*greater than 0"):
        load_catalog(f)
    f.write_text("devices:\n  board:\n    peak_gflops: 10\n    wattage: 3\n")
    with pytest.raises(CatalogError, match=r"bad.yaml: devices.board.wattage: Extra inputs"):
        load_catalog(f)
