"""A model given as a Hugging Face config.json file (``--model path/to/config.json``): the
architecture it describes with seeded random weights, traced and simulated like a
built-in; a file prismsim cannot use is one line naming the file and the key; the
workload cache knows the file by its contents."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.executors.memory import run_numerics
from prismsim.executors.trace import trace_workload
from prismsim.executors.trace_cache import workload_key
from prismsim.models.catalog import BUILTINS, known_model
from prismsim.models.load import load_model, random_inputs, state_hash
from prismsim.names import Heads, check_model, model_heads

# d 64, 4 heads of 16 sharing 2 KV heads, SwiGLU of 128, 2 blocks, 256 tokens, untied
TINY_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
              "max_position_embeddings": 512, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}


def _write(path: Path, fields: object) -> str:
    path.write_text(json.dumps(fields))
    return str(path)


@pytest.fixture
def llama(tmp_path) -> str:
    return _write(tmp_path / "config.json", TINY_LLAMA)


def test_parameters_are_the_hand_count(llama):
    stack = load_model(llama)
    d, ff, vocab, layers = 64, 128, 256, 2
    kv_width = 2 * 16  # 2 KV heads of 64 / 4 = 16
    attention = d * d + 2 * d * kv_width + d * d  # q, k, v, o: 4,096 + 2 x 2,048 + 4,096
    mlp = 3 * d * ff  # gate, up, down: 24,576
    per_block = attention + mlp + 2 * d  # and two RMSNorms: 36,992
    by_hand = vocab * d + layers * per_block + d + d * vocab  # embeddings, final norm, LM head
    assert by_hand == 106_816
    assert sum(p.numel() for p in stack.hf.parameters()) == by_hand
    assert type(stack.hf).__name__ == "LlamaForCausalLM" and stack.name == llama
    assert stack.hf.config._attn_implementation == "eager" and not stack.hf.training
    assert {p.dtype for p in stack.hf.parameters()} == {torch.float32}  # not the file's bf16


def test_traced_single_and_tensor_parallel(llama):
    n, d, dh_total = 32, 64, 64  # tokens; 4 heads x 16
    linear = 2 * (12_288 + 24_576) + 256 * d  # q/k/v/o + MLP weights of 2 blocks, LM head
    attention = 2 * 2 * (2 * n * n * dh_total)  # 2 blocks x (QK^T and AV)
    single = trace_workload(llama, "single", 1, tokens=n)
    assert single.meta["tokens"] == n and single.flops_per_device() == [
        2 * n * linear + attention]  # 6,291,456
    tp = trace_workload(llama, "tensor_parallel", 2, tokens=n)
    assert sum(tp.flops_per_device()) == 2 * n * linear + attention
    # the input to device 1, then per block two ring AllReduces of n x d float32, each a
    # reduce-scatter and an all-gather of half the rows from each device
    assert sum(m.payload_bytes for m in tp.messages) == n * d * 4 + 2 * 2 * 2 * 2 * (n // 2) * d * 4
    stack = load_model(llama)
    inputs = random_inputs(stack, tokens=n, seed=1)
    out = run_numerics(stack, inputs, "tensor_parallel", 2)
    assert torch.allclose(out, stack.reference(inputs), atol=1e-5, rtol=1e-4)


def test_weights_are_seeded_as_the_builtins_are(tmp_path):
    entry = BUILTINS["llama-tiny"]
    path = _write(tmp_path / "llama-tiny.json", {"model_type": "llama", **entry.config,
                                                 "architectures": [entry.model_class]})
    before = torch.random.get_rng_state()
    assert state_hash(load_model(path, seed=3).hf) == state_hash(load_model("llama-tiny", 3).hf)
    assert state_hash(load_model(path, seed=4).hf) != state_hash(load_model(path, seed=3).hf)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_gpt2_bert_and_vit_configs_load(tmp_path):
    """No class named (GPT-2, ViT) or one transformers lacks (BERT): by the model type."""
    gpt2 = _write(tmp_path / "gpt2.json", {"model_type": "gpt2", "n_embd": 32, "n_layer": 2,
                                           "n_head": 2, "vocab_size": 100, "n_positions": 40})
    bert = _write(tmp_path / "bert.json", {
        "model_type": "bert", "architectures": ["MyOwnBert"], "hidden_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64,
        "vocab_size": 100})
    g, b = load_model(gpt2), load_model(bert)
    assert type(g.hf).__name__ == "GPT2LMHeadModel" and len(g.blocks) == 2
    assert type(b.hf).__name__ == "BertModel" and len(b.blocks) == 1
    assert g.reference(random_inputs(g)).shape == (1, 40, 100)  # 256 tokens capped at 40
    assert b.reference(random_inputs(b, tokens=7)).shape == (1, 7, 32)
    vit = load_model(_write(tmp_path / "vit.json", {
        "model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 64, "image_size": 32,
        "patch_size": 8}))
    assert type(vit.hf).__name__ == "ViTModel"
    assert vit.reference(random_inputs(vit)).shape == (1, (32 // 8) ** 2 + 1, 32)  # + CLS


@pytest.mark.parametrize(("text", "message"), [
    ('{"model_type": "mamba", "hidden_size": 64}',
     "model_type: unsupported architecture 'mamba'; supported: bert, dinov2, gpt2, llama, "
     "qwen2, vit"),
    ('{"hidden_size": 64}', "model_type: missing"),
    ("hidden_size: 64", "not a JSON file"),
    ('[{"model_type": "llama"}]', "not a mapping of config fields (a JSON list)"),
])
def test_an_unusable_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "configs" / "model.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {message}")):
        load_model(str(path))
    result = CliRunner().invoke(main, ["simulate", "--model", str(path)])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0]
    assert "Traceback" not in result.output


def test_the_cache_key_is_the_contents_not_the_path(tmp_path, llama):
    def key(model: str) -> str:
        return workload_key(model, "single", 1, {}, tokens=16, batch=1, wire="fp32",
                            weights=None)

    first = key(llama)
    elsewhere = tmp_path / "copy" / "renamed.json"
    elsewhere.parent.mkdir()
    shutil.copy(llama, elsewhere)
    assert key(str(elsewhere)) == first
    _write(Path(llama), {**TINY_LLAMA, "hidden_size": 128})
    assert key(llama) != first
    _write(Path(llama), TINY_LLAMA)
    assert key(llama) == first


def test_heads_and_names_without_loading(tmp_path, llama):
    assert model_heads(llama) == Heads(4, 2)
    assert known_model(llama) and not known_model(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=r"an existing config\.json file"):
        check_model(str(tmp_path / "missing.json"), "s.yaml: model.name", ValueError)


def test_a_scenario_checks_and_sweeps_it(tmp_path, llama):
    """P = 3 is skipped before anything loads: 2 KV heads."""
    data = {"name": "cfg", "model": {"name": llama, "tokens": 16},
            "strategies": ["single", "tensor_parallel"], "devices": {"count": [1, 2, 3]},
            "network": {"link": "ethernet-1g"}, "output": str(tmp_path / "out")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    check = CliRunner().invoke(main, ["check", str(path)])
    assert check.exit_code == 0 and "ok: 2 points" in check.output, check.output
    assert "tensor_parallel needs P <= 2: this model has only 2 KV heads" in check.output
    result = CliRunner().invoke(main, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
