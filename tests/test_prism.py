"""PRISM numerics: CR = 1 is voltage, scaling-aware equals duplicated, an independent
oracle built from HF's own layers, and the partition-aware causal mask."""

import pytest
import torch
from transformers import ViTConfig, ViTModel

from prismsim import run_numerics
from prismsim.executors.memory import run_in_memory
from prismsim.strategies import make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.program import DeviceContext
from tests.conftest import rel_err


@pytest.mark.parametrize(("model", "devices"), [("vit-base", 3), ("bert-base", 2), ("gpt2", 3)])
def test_cr_one_is_voltage(paper, model, devices):
    stack, inputs, _ = paper(model)
    voltage = run_numerics(stack, inputs, "voltage", devices)
    prism = run_numerics(stack, inputs, "prism", devices, cr=1)
    assert rel_err(prism, voltage) <= 1e-5


class KeyRows(DeviceContext):
    """Records how many key/value rows each block's attention saw on this device."""

    key_rows: list[int]

    def compute(self, tag, fn, *args):
        if tag.name == "block":
            x, remote = args[0], args[1]
            self.key_rows.append(x.shape[1] + (0 if remote is None else remote.shape[1]))
        return fn(*args)


def _run_recording(stack, inputs, devices, **options):
    ctxs = []
    for c in make_contexts(stack, inputs, devices):
        k = KeyRows(c.device, c.sizes, c.batch, c.hidden)
        k.key_rows = []
        ctxs.append(k)
    progs = make_programs("prism", ctxs, stack, inputs, make_options("prism", **options))
    with torch.no_grad():
        out = run_in_memory(progs)[0]
    return out, [c.key_rows for c in ctxs]


def test_scaling_aware_equals_duplicated_with_fewer_keys(paper):
    stack, inputs, _ = paper("vit-base")
    scaled, scaled_rows = _run_recording(stack, inputs, 3, cr=4)
    dup, dup_rows = _run_recording(stack, inputs, 3, cr=4, duplicate=True)
    assert rel_err(scaled, dup) <= 1e-5
    # partitions 66/66/65; L = ceil(66/4) = ceil(65/4) = 17 means each
    assert scaled_rows == [[66 + 17 + 17] * 12, [66 + 17 + 17] * 12, [65 + 17 + 17] * 12]
    assert dup_rows == [[197] * 12] * 3
    # and compression changes the output (it is not secretly voltage)
    assert rel_err(scaled, run_numerics(stack, inputs, "voltage", 3)) > 1e-3


def test_prism_matches_hf_layers_over_duplicated_means():
    """Independent oracle: each device's rows through HF's own ViTLayer over the sequence
    [own rows ; other partitions' segment means, each repeated by its count]."""
    cfg = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, image_size=64, patch_size=16)  # 16 + 1 tokens
    torch.manual_seed(0)
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    pixels = torch.randn(2, 3, 64, 64)
    sizes = [6, 6, 5]  # 17 tokens over 3 devices
    segs = [[2, 2, 2], [2, 2, 2], [2, 2, 1]]  # CR = 2: L = ceil(6/2) = 3, ceil(5/2) = 3

    def dup_means(rows, seg):
        return torch.cat([part.mean(1, keepdim=True).expand(-1, len_, -1)
                          for part, len_ in zip(rows.split(seg, 1), seg, strict=True)], dim=1)

    with torch.no_grad():
        parts = list(model.embeddings(pixels).split(sizes, dim=1))
        for layer in model.layers:
            new = []
            for p in range(3):
                keys = [dup_means(parts[r], segs[r]) for r in range(3) if r != p]
                seq = torch.cat([parts[p], *keys], dim=1)
                new.append(layer(seq)[:, : sizes[p]])
            parts = new
        expected = model.layernorm(torch.cat(parts, dim=1))
    out = run_numerics(model, pixels, "prism", 3, cr=2)
    assert rel_err(out, expected) <= 1e-5


def test_causal_prism_global_mask_is_exact_local_mask_is_not(paper):
    stack, inputs, ref = paper("gpt2")
    assert rel_err(run_numerics(stack, inputs, "prism", 3, cr=1), ref) <= 1e-4
    local = run_numerics(stack, inputs, "prism", 3, cr=1, mask="local")
    assert rel_err(local, ref) > 1e-2


def test_causal_skip_changes_nothing_but_traffic(paper):
    stack, inputs, _ = paper("gpt2")
    skip = run_numerics(stack, inputs, "prism", 3, cr=4)
    full = run_numerics(stack, inputs, "prism", 3, cr=4, skip_masked=False)
    assert rel_err(skip, full) <= 1e-5


def test_prism_needs_a_compression_setting():
    with pytest.raises(ValueError, match="exactly one of"):
        make_options("prism")
    with pytest.raises(ValueError, match="no option"):
        make_options("voltage", cr=2)
