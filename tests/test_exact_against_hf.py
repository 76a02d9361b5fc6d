"""voltage and tensor_parallel reproduce the HF eager forward of the paper's models
(random weights, float32): ViT-B/16 at 197 tokens, BERT-base and GPT-2 small at 256."""

import pytest

from prismsim import run_numerics
from tests.conftest import rel_err

MODELS = ["vit-base", "bert-base", "gpt2"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("devices", [2, 3, 4])
@pytest.mark.parametrize("strategy", ["voltage", "tensor_parallel"])
def test_exact(paper, model, devices, strategy):
    stack, inputs, ref = paper(model)
    out = run_numerics(stack, inputs, strategy, devices)
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_single_device_is_the_hf_forward(paper, model):
    stack, inputs, ref = paper(model)
    assert rel_err(run_numerics(stack, inputs, "single", 1), ref) <= 1e-5


def test_the_token_counts_are_the_papers(paper):
    assert paper("vit-base")[0].n_tokens(paper("vit-base")[1]) == 197
    assert paper("bert-base")[1]["input_ids"].shape[1] == 256
    assert paper("gpt2")[1]["input_ids"].shape[1] == 256
