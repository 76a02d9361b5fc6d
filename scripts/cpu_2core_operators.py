"""Make the operator table of the catalog's `cpu-2core-2.1ghz` (the PRISM paper's
2-core CPU): measured on this project's 2-core AVX-512 host with 2 torch threads, the
way `prismsim profile-device --operators-only --threads 2` does, then put at the
entry's own level: its largest matrix products (512 x 4096 x 4096) run at the entry's
peak x efficiency (0.5 x 268.8 GFLOP/s: the share of peak eager PyTorch reaches on
Transformer GEMMs). The table keeps what the host measured of how the other shapes
compare with those; no model is timed.

    python scripts/cpu_2core_operators.py
    # writes prismsim/catalog/cpu-2core-2.1ghz-operators.yaml
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from prismsim.profiling.operators import measure_operator_table

ENTRY = "cpu-2core-2.1ghz"
ANCHOR = (512, 4096, 4096)  # the product that runs at the entry's GEMM rate
CATALOG = Path(__file__).resolve().parents[1] / "prismsim" / "catalog"
OUT = CATALOG / f"{ENTRY}-operators.yaml"


def main() -> None:
    entry = yaml.safe_load((CATALOG / "devices.yaml").read_text())[ENTRY]
    flops_per_s = entry["peak_gflops"] * entry["efficiency"] * 1e9
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    table, spread = measure_operator_table(
        f"this project's 2-core host, 2 torch threads, {when}; scaled so that "
        f"{'x'.join(map(str, ANCHOR))} products run at {flops_per_s / 1e9:g} GFLOP/s",
        threads=2)
    m, k, n = ANCHOR
    measured_s = table.op_s(("mm", *ANCHOR))
    factor = (2 * m * k * n / flops_per_s) / measured_s
    assert table.reference_s is not None
    scaled = table.at_speed(table.reference_s * factor).model_copy(update={"reference_s": None})
    OUT.write_text(yaml.safe_dump(scaled.model_dump(mode="json"), sort_keys=False))
    print(f"passes within {100 * spread:.0f} %; measured {2 * m * k * n / measured_s / 1e9:.1f} "
          f"GFLOP/s on {ANCHOR}, times x {factor:.3f} -> {OUT}")


if __name__ == "__main__":
    main()
