"""Loading a model: a Hugging Face model (object, built-in name, config.json file, hub
name or local directory) -> the uniform :class:`ModelStack` that strategies run; model
inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file
from torch import Tensor, nn

from prismsim.models import tuned
from prismsim.models.builtin import build_builtin
from prismsim.models.catalog import BUILTINS, PRETRAINED, is_config_path, model_names
from prismsim.models.config_file import build_from_config, read_config
from prismsim.models.llama import adapt_llama
from prismsim.models.pretrained import LOADERS
from prismsim.models.stack import Inputs, ModelStack
from prismsim.models.text import adapt_bert, adapt_gpt2
from prismsim.models.vision import adapt_dinov2, adapt_vit

ADAPTERS: dict[str, Callable[[nn.Module], ModelStack]] = {
    "vit": adapt_vit,
    "dinov2": adapt_dinov2,
    "bert": adapt_bert,
    "gpt2": adapt_gpt2,
    "llama": adapt_llama,
    "qwen2": adapt_llama,  # Llama with biases on q/k/v
}

def adapt(model: nn.Module, name: str | None = None) -> ModelStack:
    """Wrap a HF model object. Switches it to eval mode and eager attention (the reference)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ADAPTERS:
        raise ValueError(f"unsupported model type {model_type!r}; supported: {sorted(ADAPTERS)}")
    model.eval().requires_grad_(False)  # inference only; also lets TorchScript trace steps
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    stack = ADAPTERS[model_type](model)
    for block in stack.blocks:  # GPT-2's split projections are new modules
        block.requires_grad_(False)
    if name:
        stack.name = name
    return stack


def _from_pretrained(name: str) -> nn.Module:
    config = transformers.AutoConfig.from_pretrained(name)
    archs = getattr(config, "architectures", None) or []
    cls = getattr(transformers, archs[0], None) if archs else transformers.AutoModel
    if cls is None:
        raise ValueError(f"{name}: unknown architecture {archs[0]!r}")
    return cls.from_pretrained(name, attn_implementation="eager")


def file_config(path: str) -> transformers.PretrainedConfig:
    """A config.json file's config, checked: a JSON mapping with a ``model_type`` that
    ``ADAPTERS`` adapts (else one line naming the file and the key)."""
    return read_config(path, ADAPTERS)


def load_model(model: str | nn.Module | ModelStack, seed: int = 0) -> ModelStack:
    """A ModelStack from a stack, a HF model object, a built-in name or a config.json
    file (seeded random weights), or a hub name / local directory (real weights)."""
    if isinstance(model, ModelStack):
        return model
    if isinstance(model, nn.Module):
        return adapt(model)
    if tuned.is_tuned(model):
        return _tuned_model(model, seed)
    if model in BUILTINS:
        return adapt(build_builtin(model, seed), name=model)
    if model in LOADERS:
        return adapt(LOADERS[model](), name=model)
    if is_config_path(model):
        return adapt(build_from_config(file_config(model), seed), name=model)
    try:
        return adapt(_from_pretrained(model), name=model)
    except OSError as err:
        names = ", ".join(model_names())
        raise ValueError(f"model {model!r} is not a built-in name ({names}), a config.json "
                         f"file, a local model directory, or a reachable hub model ({err})"
                         ) from None


def _tuned_model(name: str, seed: int) -> ModelStack:
    """The base model with the weights ``prismsim finetune`` trained put back on it."""
    tuning = tuned.parse(name)
    stack = load_model(tuning.base, seed)
    _apply_tuned(stack.hf, tuning, state_hash(stack.hf), name)
    stack.name = name
    return stack


def state_hash(module: nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order."""
    h = hashlib.sha256()
    for key, t in module.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def normalize_inputs(stack: ModelStack, inputs: Tensor | Inputs) -> Inputs:
    """Accept a bare tensor (pixel values or input ids) or a dict of model inputs."""
    if isinstance(inputs, Tensor):
        inputs = {stack.main_input: inputs}
    if stack.main_input not in inputs:
        raise ValueError(f"{stack.name}: inputs need {stack.main_input!r}, got {sorted(inputs)}")
    mask = inputs.get("attention_mask")
    if mask is not None and not bool(mask.all()):
        raise ValueError(f"{stack.name}: padded inputs (attention_mask with zeros) are not "
                         "supported by the distributed strategies; pass unpadded sequences")
    return {k: v for k, v in inputs.items() if k != "attention_mask"}


def random_inputs(stack: ModelStack, batch: int = 1, tokens: int | None = None,
                  seed: int = 0) -> Inputs:
    """Seeded random inputs of the right kind: images for vision, token ids for text."""
    gen = torch.Generator().manual_seed(seed)
    cfg = stack.hf.config
    if stack.main_input == "pixel_values":
        size = _image_size(stack)
        return {"pixel_values": torch.randn(batch, cfg.num_channels, size, size, generator=gen)}
    entry = BUILTINS.get(stack.name)
    n = tokens or (entry.tokens if entry and entry.tokens else 256)
    n = min(n, getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", n))
    return {"input_ids": torch.randint(0, cfg.vocab_size, (batch, n), generator=gen)}


def _image_size(stack: ModelStack) -> int:
    """A built-in pretrained model's own input size (dinov2-small: 196 px = 197 tokens,
    where its HF config says 518), else the config's."""
    entry = PRETRAINED.get(stack.name)
    return entry.image_size if entry and entry.image_size else stack.hf.config.image_size


def _apply_tuned(module: nn.Module, tuning: tuned.FinetuneRun, base_hash: str, name: str) -> None:
    """Put the trained parameters of ``tuning`` on ``module`` (the base model)."""
    path = Path(name) if name.endswith(".safetensors") else tuned.weights_path(tuning, base_hash)
    if not path.exists():
        raise ValueError(f"model {name!r} is not fine-tuned yet: run prismsim finetune "
                         f"{tuned.command_args(tuning)}")
    state = merge_adapters(module, load_file(str(path)))
    missing = sorted(set(state) - set(dict(module.named_parameters())))
    if missing:
        raise ValueError(f"{path}: parameters the base model lacks: {missing[:3]}")
    module.load_state_dict(state, strict=False)


def merge_adapters(module: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """LoRA adapters in ``state`` (``W.lora_A`` [r, in], ``W.lora_B`` [out, r]) merged
    into the weights W of ``module`` (W + LORA_SCALE * B @ A); the rest of ``state``."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name in [k[:-len(".lora_A")] for k in state if k.endswith(".lora_A")]:
            a, b = state.pop(f"{name}.lora_A"), state.pop(f"{name}.lora_B")
            if name not in params:
                raise ValueError(f"adapters for {name}, which the base model lacks")
            params[name].add_(tuned.LORA_SCALE * (b @ a))  # [out, in]
    return state
