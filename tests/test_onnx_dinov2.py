"""The DINOv2-S/14 converted from ONNX computes what the ONNX graph computes.

The reference is the graph itself, run by ``onnx.reference.ReferenceEvaluator`` (numpy,
independent of torch and of the converter) up to the backbone's final layer norm; the graph's
own output is a decoder's importance map on top of it, which Dinov2Model does not have.
"""

import dataclasses
import functools

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from onnx.utils import Extractor

from prismsim.assets import ASSETS, asset_file
from prismsim.cache_dir import cache_root
from prismsim.models import onnx_dinov2
from prismsim.models.onnx_dinov2 import ASSET, build_model, load_dinov2_small, onnx_to_state_dict


@functools.cache
def _onnx_backbone() -> tuple[ReferenceEvaluator, str, int]:
    """Evaluator of the graph cut at the backbone output, its input name and declared side."""
    model = onnx.load(str(asset_file(ASSET)))
    # last_hidden_state is the final layer norm's output: the Add of backbone.layernorm.bias
    out = next(n.output[0] for n in model.graph.node if "backbone.layernorm.bias" in n.input)
    # Shape inference leaves this tensor untyped; the Extractor needs a value_info for it.
    model.graph.value_info.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT,
                                                                     None))
    (image,) = model.graph.input
    side = image.type.tensor_type.shape.dim[-1].dim_value
    sub = Extractor(model).extract_model([image.name], [out])
    return ReferenceEvaluator(sub), image.name, side


@functools.cache
def _converted():
    return build_model(*onnx_to_state_dict(asset_file(ASSET)))


@pytest.mark.parametrize("side", [None, 196], ids=["declared-size", "196px"])
def test_conversion_reproduces_onnx_backbone(side):
    """None: the graph's declared input size (224); 196: the size the simulator uses. Both
    interpolate the 37x37 position table, in the graph and in Dinov2Model alike."""
    evaluator, name, declared = _onnx_backbone()
    side = side or declared
    x = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    (ref,) = evaluator.run(None, {name: x})
    with torch.no_grad():
        out = _converted()(torch.from_numpy(x))
    tokens = (side // 14) ** 2 + 1
    assert ref.shape == (1, tokens, 384)
    scale = np.abs(ref).max()
    # float32 arithmetic in a different order: measured ~2e-6 of the output scale
    assert np.abs(out.last_hidden_state.numpy() - ref).max() <= 1e-4 * scale
    assert np.abs(out.pooler_output.numpy() - ref[:, 0]).max() <= 1e-4 * scale


def test_config_read_from_graph():
    _, kwargs = onnx_to_state_dict(asset_file(ASSET))
    # DINOv2-S/14: 518 = 37 patches of 14; eps 1e-6 as in the original DINOv2 code
    known = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
             "mlp_ratio": 4, "patch_size": 14, "image_size": 518, "layer_norm_eps": 1e-6,
             "hidden_act": "gelu"}
    assert {k: kwargs[k] for k in known} == known


def test_load_converts_once_and_takes_196px(monkeypatch):
    folder = cache_root() / "converted" / "dinov2-small"
    for old in folder.glob("*") if folder.exists() else []:
        old.unlink()  # start cold even if another test of this session converted already
    calls = []
    convert = onnx_dinov2.onnx_to_state_dict
    monkeypatch.setattr(onnx_dinov2, "onnx_to_state_dict",
                        lambda path: calls.append(path) or convert(path))

    first, second = load_dinov2_small(), load_dinov2_small()
    assert len(calls) == 1  # the second call is a cache hit
    pin = ASSETS[ASSET].files[0][1][:16]
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and all(pin in n and not n.endswith(".part") for n in names)

    cfg = second.config
    assert (len(second.encoder.layer), cfg.hidden_size, cfg.num_attention_heads) == (12, 384, 6)
    assert not second.training and cfg._attn_implementation == "eager"
    x = torch.randn(1, 3, 196, 196, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = first(x).last_hidden_state, second(x).last_hidden_state
    assert b.shape == (1, 197, 384)
    assert torch.equal(a, b)  # the safetensors round trip is lossless


def test_new_pin_converts_again(monkeypatch):
    onnx_path = asset_file(ASSET)
    load_dinov2_small()  # cached under the current pin
    calls = []
    convert = onnx_dinov2.onnx_to_state_dict
    monkeypatch.setattr(onnx_dinov2, "onnx_to_state_dict",
                        lambda path: calls.append(path) or convert(path))
    asset = ASSETS[ASSET]
    repinned = dataclasses.replace(asset, files=((asset.files[0][0], "f" * 64),))
    monkeypatch.setitem(ASSETS, ASSET, repinned)
    monkeypatch.setattr(onnx_dinov2, "asset_file", lambda name: onnx_path)  # fake pin != file
    load_dinov2_small()
    assert calls == [onnx_path]
