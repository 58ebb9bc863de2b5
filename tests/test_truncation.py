"""Language-model inputs longer than the context: truncated on the side that keeps what is
explained, marked ``truncated`` and warned about, or refused with the lengths."""

import explain_models
import pytest
import torch

import explain
from explain import ExplainWarning, attribute
from explain.text import encode_texts

PROMPT = " ".join(["the movie was good and the acting was great"] * 8) + " she is a doctor"


def token_rows(result, step=None):
    frame = result.to_frame(level="token")
    return frame if step is None else frame[frame.step == step]


def test_left_truncation_keeps_the_end_and_indexes_the_original_text(tiny_gpt2):
    tokenizer = tiny_gpt2.tokenizer
    full = tokenizer(PROMPT)["input_ids"]
    assert len(full) > 64
    with pytest.warns(ExplainWarning, match=r"truncated \(their end kept\)"):
        batch = encode_texts(tokenizer, [PROMPT, "the film was bad"], max_length=64,
                             truncation_side="left")
    assert batch.truncated == (True, False)
    assert batch.input_ids[0].tolist() == full[-64:]
    assert batch.offsets[0][-1][1] == len(PROMPT)   # offsets index into the original text
    assert batch.offsets[0][0][0] > 0
    assert batch.words[0][-1] == "doctor"
    assert tokenizer.truncation_side == "right"      # the tokenizer's own setting is put back
    with pytest.warns(ExplainWarning, match=r"\(their start kept\)"):
        right = encode_texts(tokenizer, PROMPT, max_length=64)
    assert right.input_ids[0].tolist() == full[:64]
    with pytest.raises(ValueError, match="unknown truncation_side 'end'.*valid: right, left"):
        encode_texts(tokenizer, PROMPT, truncation_side="end")


def test_next_token_of_a_long_prompt_follows_its_end(tiny_gpt2):
    with pytest.warns(ExplainWarning, match="their end kept"):
        result = attribute(tiny_gpt2, PROMPT, method="saliency")
    rows = token_rows(result)
    assert rows.truncated.all() and len(rows) == 64
    assert rows.end.max() == len(PROMPT)
    # the explained token is the model's prediction after the last 64 tokens of the prompt
    ids = torch.tensor([tiny_gpt2.tokenizer(PROMPT)["input_ids"][-64:]])
    with torch.no_grad():
        probs = tiny_gpt2.model(input_ids=ids).logits[0, -1].softmax(-1)
    explained = result.explanations().iloc[0]
    assert explained.target == tiny_gpt2.tokenizer.convert_ids_to_tokens(int(probs.argmax()))
    assert explained.target_score == pytest.approx(float(probs.max()), rel=1e-4)


def test_continuation_after_a_long_prompt_keeps_the_prompt_end(tiny_gpt2):
    continuation = " and he is a nurse"
    n_tokens = len(tiny_gpt2.tokenizer(continuation)["input_ids"])
    with pytest.warns(ExplainWarning, match="truncated"):
        result = attribute(tiny_gpt2, PROMPT, continuation=continuation, method="saliency")
    rows = token_rows(result)
    assert rows.truncated.all()
    assert sorted(rows.step.unique()) == list(range(n_tokens))
    # step k reads the end of the prompt and the continuation tokens before token k
    assert token_rows(result, 0).end.max() == len(PROMPT)
    for step in range(1, n_tokens):
        assert token_rows(result, step).end.max() > len(PROMPT)
    assert len(token_rows(result, n_tokens - 1)) == 63   # 64 tokens, the last one explained


def test_a_continuation_longer_than_the_context_is_refused_with_lengths(tiny_gpt2):
    continuation = " the film was bad" * 20
    refused = r"continuation\[0\] is \d+ tokens, but the model reads at most 64 tokens.*at most 63"
    with pytest.raises(ValueError, match=refused), pytest.warns(ExplainWarning, match="truncated"):
        attribute(tiny_gpt2, "a film", continuation=continuation, method="saliency")


def test_a_mask_beyond_the_context_says_so(tiny_mlm):
    late = " ".join(["the movie was good"] * 20) + " and the acting was [MASK]."
    beyond = (r"texts\[0\] has its '\[MASK\]' token at token \d+ of \d+, beyond the model's "
              r"context limit of 64 tokens")
    with pytest.raises(ValueError, match=beyond), pytest.warns(ExplainWarning, match="truncated"):
        attribute(tiny_mlm, late, method="saliency")
    raise_limit = r"or raise max_length \(now 16; the model reads up to 64\)"
    with pytest.raises(ValueError, match=raise_limit), \
            pytest.warns(ExplainWarning, match="truncated"):
        attribute(tiny_mlm, "the movie was good " * 5 + "[MASK]", method="saliency", max_length=16)
    with pytest.raises(ValueError, match=r"texts\[0\] has no '\[MASK\]' token"):
        attribute(tiny_mlm, "the movie was good", method="saliency")
    # a mask before the truncation point is explained, the text marked
    with pytest.warns(ExplainWarning, match="truncated"):
        result = attribute(tiny_mlm, "the acting was [MASK]. " + late, method="saliency")
    assert token_rows(result).truncated.all()


@pytest.fixture(scope="module")
def seq2seq():
    return explain.load_model(explain_models.ensure("seq2seq"))


def test_seq2seq_source_is_truncated_and_marked_and_a_long_target_refused(seq2seq):
    source = "april the twenty fourth twenty eighty two " * 5
    with pytest.warns(ExplainWarning, match=r"longer than 32 tokens and were truncated \(their "
                                            r"start kept\)"):
        result = attribute(seq2seq, source, continuation="2082 04 24", method="saliency")
    rows = token_rows(result)
    assert rows.truncated.all()
    assert rows.groupby("step").size().eq(32).all()
    target = " ".join(["2082 04 24"] * 12)
    n_tokens = len(seq2seq.tokenizer(target, add_special_tokens=False)["input_ids"])
    assert n_tokens > 31
    with pytest.raises(ValueError, match=rf"continuation\[0\] is {n_tokens} tokens, but the "
                                         rf"decoder reads at most 32 positions"):
        attribute(seq2seq, "april the twenty fourth twenty eighty two", continuation=target,
                  method="saliency")
