"""What each strategy declares in ``strategies.STRATEGIES``, held to what its module does
(a plug-in author's safety net); the one answer to what a strategy can do
(``why_not``), and a named model's heads known without loading it (``names.model_heads``)."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
import transformers
from transformers import GPT2Config, LlamaConfig

from prismsim import run_numerics
from prismsim.configuration import configurations
from prismsim.executors.memory import InMemoryNetwork, run_in_memory
from prismsim.models.catalog import BUILTINS
from prismsim.models.load import load_model, random_inputs
from prismsim.names import model_heads
from prismsim.strategies import (
    EXCHANGES,
    STRATEGIES,
    CannotRunError,
    Heads,
    StrategyEntry,
    decoding_strategies,
    get_strategy,
    make_options,
    rowwise,
    why_not,
)
from prismsim.strategies.contexts import make_contexts
from prismsim.workload import MASTER
from tests.conftest import rel_err

NAMES = sorted(STRATEGIES)
OPTIONS = {"prism": {"segments": 1}}  # what a strategy needs to run at all


def _module_output(name: str, devices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, HF eager output) of the module's own programs (not ``make_programs``,
    which asks the declaration first) on bert-tiny: 2 heads, 16 tokens."""
    stack = load_model("bert-tiny")
    inputs = random_inputs(stack, tokens=16, seed=1)
    module, options = get_strategy(name), make_options(name, **OPTIONS.get(name, {}))
    programs = [module.program(ctx, stack, inputs if ctx.device == MASTER else None, options)
                for ctx in make_contexts(stack, inputs, devices)]
    with torch.no_grad():
        out = run_in_memory(programs, InMemoryNetwork(devices))[MASTER]
    return out, stack.reference(inputs)


@pytest.mark.parametrize("name", NAMES)
def test_a_strategy_declared_to_decode_has_generate(name):
    assert STRATEGIES[name].decodes == hasattr(get_strategy(name), "generate")


@pytest.mark.parametrize("name", NAMES)
def test_declared_exchanges_are_the_options_exchange(name):
    fields = {f.name for f in dataclasses.fields(get_strategy(name).Options)}
    declared = STRATEGIES[name].exchanges
    assert ("exchange" in fields) == bool(declared)
    for pattern in declared:
        assert make_options(name, **OPTIONS.get(name, {}), exchange=pattern).exchange == pattern
    if declared:
        with pytest.raises(ValueError, match="exchange"):
            make_options(name, exchange="carrier-pigeon")


def test_the_declared_patterns_are_the_row_wise_loops():
    assert EXCHANGES == rowwise.EXCHANGES


@pytest.mark.parametrize("name", [n for n in NAMES if n != "single"])
def test_strategies_declared_to_shard_heads_need_p_up_to_the_heads(name):
    """bert-tiny has 2 heads: at P = 3 a strategy giving each device whole heads cannot
    split them; one that splits rows can."""
    if STRATEGIES[name].shards_heads:
        with pytest.raises(ValueError, match="only 2 heads"):
            _module_output(name, 3)
    else:
        out, ref = _module_output(name, 3)
        assert out.shape == ref.shape


@pytest.mark.parametrize("name", [n for n in NAMES if n != "single"])
def test_strategies_declared_exact_give_the_hf_forward(name):
    """Exact: float rounding (about 3e-7 here); prism with one mean per partition of 8
    tokens: a real difference (about 3e-4 on bert-tiny's pooled logits)."""
    out, ref = _module_output(name, 2)
    if STRATEGIES[name].exact:
        assert rel_err(out, ref) <= 1e-5
    else:
        assert rel_err(out, ref) > 1e-4


def test_why_not_gives_the_reason_or_none():
    gqa, plain = Heads(query=8, kv=2), Heads(query=2, kv=2)
    assert why_not("tensor_parallel", 3, gqa) == \
        "tensor_parallel needs P <= 2: this model has only 2 KV heads"
    assert why_not("galaxy", 3, plain) == "galaxy needs P <= 2: this model has only 2 heads"
    assert why_not("tensor_parallel", 2, gqa) is None
    assert why_not("voltage", 5, plain) is None and why_not("prism", 5, plain) is None
    assert why_not("tensor_parallel", 3) is None  # heads not known: not held against it
    assert why_not("galaxy", decode=True) == ("strategy 'galaxy' has no decoding; these have: "
                                              "single, voltage, prism, tensor_parallel")
    assert why_not("tensor_parallel", decode=True) is None
    assert why_not("tensor_parallel", exchange="ring") == \
        "tensor_parallel has no exchange 'ring'; its: none"
    assert why_not("tensor_parallel", exchange="p2p") is None
    assert why_not("voltage", exchange="ring") is None
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        why_not("nope", 2)


def test_programs_are_made_only_for_what_the_strategy_can_do():
    ids = torch.zeros(1, 8, dtype=torch.long)
    with pytest.raises(CannotRunError, match="tensor_parallel needs P <= 2: this model has "
                                             "only 2 heads"):
        run_numerics("bert-tiny", ids, "tensor_parallel", 3)


def test_a_plug_in_declares_what_it_can_do(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "echo", StrategyEntry(
        "prismsim.strategies.voltage", decodes=True, exchanges=("p2p", "ring"),
        shards_heads=True))
    assert "echo" in decoding_strategies()
    grid = configurations(["echo", "tensor_parallel"], [2], exchanges=["p2p", "ring"])
    assert [(c.strategy, c.exchange) for c in grid] == [
        ("echo", "p2p"), ("echo", "ring"), ("tensor_parallel", "p2p")]
    assert why_not("echo", 3, Heads(4, 2)) == "echo needs P <= 2: this model has only 2 KV heads"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_heads_are_the_configs_own(name):
    """What the catalog says without transformers is what transformers builds."""
    entry = BUILTINS[name]
    config = getattr(transformers, entry.config_class)(**entry.config)
    query = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or query
    assert model_heads(name) == Heads(query, kv)


def test_heads_of_named_models():
    assert model_heads("vit-base") == Heads(12, 12)  # ViT-B/16: 12 heads of 64
    assert model_heads("llama-tiny") == Heads(8, 4)  # grouped-query 8 / 4
    assert model_heads("llama-tiny@prism-P2-cr4-head") == Heads(8, 4)  # its base's
    assert model_heads("google/vit-base-patch16-224") is None  # only loading tells
    assert model_heads("smollm2-135m") is None  # converted from a GGUF file when loaded


def test_heads_of_a_local_directory(tmp_path):
    llama, gpt2, broken = tmp_path / "llama", tmp_path / "gpt2", tmp_path / "broken"
    LlamaConfig(num_attention_heads=4, num_key_value_heads=2, hidden_size=64).save_pretrained(
        llama)
    GPT2Config(n_head=3, n_embd=48).save_pretrained(gpt2)
    broken.mkdir()
    (broken / "config.json").write_text("[1, 2")
    assert model_heads(str(llama)) == Heads(4, 2)
    assert model_heads(str(gpt2)) == Heads(3, 3)
    assert model_heads(str(broken)) is None
    (broken / "config.json").write_text(json.dumps(["not", "a", "mapping"]))
    assert model_heads(str(broken)) is None


def test_asking_imports_no_torch():
    code = ("import sys; import prismsim.strategies, prismsim.names; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
