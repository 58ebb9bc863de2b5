"""explain.hooks: hooks always removed, state restored, recordings equal a manual forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explain import hooks


def _inputs(loaded, texts=("a good film", "a dull, bad film indeed")):
    return loaded.encode_texts(list(texts)).model_inputs()


def test_record_equals_manual_forward(tiny_bert):
    inputs = _inputs(tiny_bert)
    name = "bert.encoder.layer.1.output"
    with hooks.record(tiny_bert, [name, "bert.embeddings"]) as rec:
        logits = tiny_bert.model(**inputs).logits
    manual = tiny_bert.model(**inputs, output_hidden_states=True)
    # hidden_states[0] is the embedding output, [2] the output of layer 1.
    assert torch.equal(rec.outputs[name], manual.hidden_states[2])
    assert torch.equal(rec.outputs["bert.embeddings"], manual.hidden_states[0])
    assert torch.equal(logits, manual.logits)
    assert hooks.count_hooks(tiny_bert) == 0


def test_record_gradients_match_autograd(tiny_mlp):
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    with hooks.record(tiny_mlp, ["hidden.1"], gradients=True) as rec:
        tiny_mlp.model(x)[:, 1].sum().backward()
    hidden = rec.outputs["hidden.1"].clone().requires_grad_(True)
    # Gradient of the score w.r.t. the layer output, computed by hand from the layers after it.
    model = tiny_mlp.model
    model(x)  # no hooks now
    score = model.out(model.act(hidden))[:, 1].sum()
    (expected,) = torch.autograd.grad(score, hidden)
    assert torch.allclose(rec.gradients["hidden.1"], expected, atol=1e-6)
    assert hooks.count_hooks(tiny_mlp) == 0


def test_unknown_name_suggests_and_registers_nothing(tiny_bert):
    with pytest.raises(KeyError, match=r"bert\.encoder\.layer\.0\.output"), \
            hooks.record(tiny_bert, ["bert.embeddings", "bert.encoder.layer.0.outptu"]):
        pass  # pragma: no cover - never reached
    assert hooks.count_hooks(tiny_bert) == 0


def test_exception_inside_block_removes_hooks_and_restores_state(tiny_bert):
    model = tiny_bert.model
    model.eval()
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), \
            hooks.record(tiny_bert, ["bert.encoder.layer.0"], gradients=True):
        assert hooks.count_hooks(tiny_bert) == 1
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        raise RuntimeError("boom")
    assert hooks.count_hooks(tiny_bert) == 0
    assert not any(m.training for m in model.modules())
    assert model.bert.embeddings.word_embeddings.weight.requires_grad is False


def test_nesting_removes_exactly_its_own(tiny_bert):
    with hooks.record(tiny_bert, ["bert.encoder.layer.0"]) as outer:
        assert hooks.count_hooks(tiny_bert) == 1
        with hooks.edit_outputs(tiny_bert, {"bert.encoder.layer.1": lambda m, i, o: None}):
            assert hooks.count_hooks(tiny_bert) == 2
            with hooks.edit_inputs(tiny_bert, {"bert.pooler": lambda m, a, k: None}):
                assert hooks.count_hooks(tiny_bert) == 3
            assert hooks.count_hooks(tiny_bert) == 2
        assert hooks.count_hooks(tiny_bert) == 1
        tiny_bert.model(**_inputs(tiny_bert))
    assert hooks.count_hooks(tiny_bert) == 0
    assert "bert.encoder.layer.0" in outer.outputs


def test_edit_outputs_patches_a_layer(tiny_mlp):
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    with hooks.edit_outputs(tiny_mlp, {"hidden.1": lambda m, i, o: torch.zeros_like(o)}):
        patched = tiny_mlp.model(x)
    bias_only = tiny_mlp.model.out.bias.expand(3, -1)
    assert torch.allclose(patched, bias_only)
    assert not torch.allclose(tiny_mlp.model(x), patched)
    assert hooks.count_hooks(tiny_mlp) == 0


def test_edit_inputs_can_zero_a_head_slice(tiny_bert):
    inputs = _inputs(tiny_bert)
    dense = "bert.encoder.layer.0.attention.output.dense"
    head, size = 2, 32 // 4

    def zero_head(module, args, kwargs):
        (hidden,) = args
        hidden = hidden.clone()
        hidden[..., head * size:(head + 1) * size] = 0
        return (hidden,), kwargs

    with hooks.record(tiny_bert, [dense]) as plain:
        tiny_bert.model(**inputs)
    with hooks.edit_inputs(tiny_bert, {dense: zero_head}), \
            hooks.record(tiny_bert, [dense]) as masked:
        tiny_bert.model(**inputs)
    assert not torch.allclose(plain.outputs[dense], masked.outputs[dense])
    assert hooks.count_hooks(tiny_bert) == 0


def test_edit_with_non_callable_is_refused_before_registering(tiny_mlp):
    with pytest.raises(TypeError, match="must be callable"), \
            hooks.edit_outputs(tiny_mlp, {"out": 3}):
        pass  # pragma: no cover
    assert hooks.count_hooks(tiny_mlp) == 0


def test_count_hooks_sees_foreign_hooks(tiny_mlp):
    handle = tiny_mlp.model.out.register_forward_hook(lambda *a: None)
    try:
        assert hooks.count_hooks(tiny_mlp) == 1
    finally:
        handle.remove()
    assert hooks.count_hooks(tiny_mlp) == 0


def test_wrong_object_is_a_clear_type_error():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        hooks.count_hooks("bert")


def test_a_module_with_a_model_submodule_is_hooked_itself():
    """BartFor* / LlamaFor* have a ``.model`` submodule; names resolve against the outer module."""

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.model(x))

    wrapper = Wrapper()
    resolved = hooks.resolve_modules(wrapper, ["model.0", "head"])
    assert resolved["model.0"] is wrapper.model[0] and resolved["head"] is wrapper.head
    with hooks.record(wrapper, ["head"]) as rec:
        out = wrapper(torch.ones(1, 3))
    torch.testing.assert_close(rec.outputs["head"], out)
