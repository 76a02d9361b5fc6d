"""Model adapters: every supported HF class, loading from a directory, clear refusals."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    Dinov2Config,
    Dinov2ForImageClassification,
    GPT2Config,
    GPT2Model,
    ViTConfig,
    ViTModel,
)

from prismsim import load_model, run_numerics
from prismsim.models.load import normalize_inputs, random_inputs
from tests.conftest import rel_err

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _models():
    torch.manual_seed(0)
    yield ViTModel(ViTConfig(**SMALL, image_size=32, patch_size=8))  # bare: last hidden state
    yield Dinov2ForImageClassification(Dinov2Config(**{**SMALL, "mlp_ratio": 2}, image_size=28,
                                                     patch_size=14, num_labels=3))
    yield BertModel(BertConfig(**SMALL, vocab_size=100))
    yield GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100))


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("strategy", ["voltage", "tensor_parallel"])
def test_every_family_is_exact(model, strategy):
    stack = load_model(model)
    inputs = random_inputs(stack, batch=2, tokens=12)
    ref = stack.reference(inputs)
    assert rel_err(run_numerics(stack, inputs, strategy, 2), ref) <= 1e-5


def test_dinov2_layer_scale_is_used():
    torch.manual_seed(0)
    model = Dinov2ForImageClassification(Dinov2Config(**SMALL, image_size=28, patch_size=14))
    stack = load_model(model)
    assert torch.equal(stack.blocks[0].ls_attn, model.dinov2.encoder.layer[0].layer_scale1.lambda1)


def test_load_from_local_directory(tmp_path):
    torch.manual_seed(0)
    BertModel(BertConfig(**SMALL, vocab_size=100)).save_pretrained(tmp_path)
    stack = load_model(str(tmp_path))
    ids = torch.randint(0, 100, (1, 10))
    assert stack.family == "bert"
    assert rel_err(run_numerics(stack, ids, "voltage", 3), stack.reference({"input_ids": ids})) \
        <= 1e-5


def test_unsupported_and_padded_inputs_are_refused():
    with pytest.raises(ValueError, match="unsupported model type"):
        load_model(torch.nn.Linear(2, 2))
    stack = load_model("bert-tiny")
    mask = torch.ones(1, 8, dtype=torch.long)
    mask[0, -2:] = 0
    with pytest.raises(ValueError, match="padded"):
        normalize_inputs(stack, {"input_ids": torch.zeros(1, 8, dtype=torch.long),
                                 "attention_mask": mask})


def test_bare_tensor_inputs():
    stack = load_model("vit-tiny")
    pixels = random_inputs(stack)["pixel_values"]
    assert run_numerics("vit-tiny", pixels, "single").shape == (1, 10)


def test_dinov2_small_workload_inputs_are_its_own_196_px():
    # its HF config says 518 px (1,370 tokens); the pinned model is used at 196 px = 197
    from prismsim.models.load import load_model, random_inputs

    stack = load_model("dinov2-small")
    assert stack.n_tokens(random_inputs(stack)) == 14 * 14 + 1
