"""The LM network and generation: causality, KV cache = full recomputation, CFG, sampling, EOS, and a tiny model that
overfits one sequence so that greedy generation reproduces it exactly."""

from __future__ import annotations

import logging

import pytest
import torch

from audiolab.models.tokenlm.model import TokenLM
from audiolab.models.tokenlm.sampling import generate, guided_logits, sample_logits


def _lm(**kw) -> TokenLM:
    torch.manual_seed(0)
    cfg = dict(n_q=3, card=16, d_model=32, layers=2, heads=4, max_len=256)
    cfg.update(kw)
    return TokenLM(**cfg).eval()


def test_causal_unaffected_by_future_tokens():
    lm = _lm(n_tags=3, max_tags=2)
    codes = torch.randint(0, 16, (2, 3, 12))
    seq = lm.pattern.build(codes)
    tags = torch.tensor([[1, 2], [3, 0]])
    out = lm(seq, tags)
    seq2 = seq.clone()
    seq2[:, :, 8:] = torch.randint(0, 16, seq2[:, :, 8:].shape)
    out2 = lm(seq2, tags)
    assert torch.allclose(out[:, :, :8], out2[:, :, :8], atol=1e-5)
    assert not torch.allclose(out[:, :, 8:], out2[:, :, 8:], atol=1e-3)
    # and the condition matters
    assert not torch.allclose(lm(seq, lm.null_tags(2)), out, atol=1e-4)


@pytest.mark.parametrize("eos", [False, True])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_cache_generation_equals_full_recomputation(eos, temperature):
    lm = _lm(eos=eos, n_tags=2, max_tags=1)
    prompt = torch.randint(0, 16, (2, 3, 4))
    tags = torch.tensor([[1], [2]])
    kw = dict(prompt=prompt, tags=tags, temperature=temperature, top_k=8, seed=3, cfg_scale=2.0)
    a = generate(lm, 20, use_cache=True, **kw)
    b = generate(lm, 20, use_cache=False, **kw)
    assert torch.equal(a["seq"], b["seq"])
    assert torch.equal(a["codes"], b["codes"])
    assert torch.equal(a["codes"][:, :, :4], prompt)  # the prompt is kept verbatim


def test_cfg_scale_one_equals_conditional_model():
    lm = _lm(n_tags=3, max_tags=2)
    with torch.no_grad():  # an untrained model barely separates the conditions (init std 0.02): make it matter
        lm.tag_embedding.weight.normal_(0.0, 2.0)
    tags = torch.tensor([[1, 3], [2, 0]])
    cond = generate(lm, 15, tags=tags, temperature=1.0, seed=5)  # s = 1: conditional branch only
    batched = generate(lm, 15, tags=tags, temperature=1.0, seed=5, cfg_scale=1.0, force_cfg_batch=True)
    assert torch.equal(cond["codes"], batched["codes"])
    guided = generate(lm, 15, tags=tags, temperature=1.0, seed=5, cfg_scale=3.0)
    assert not torch.equal(cond["codes"], guided["codes"])
    x, y = torch.randn(4, 16), torch.randn(4, 16)
    assert torch.equal(guided_logits(x, y, 1.0), y + (x - y))
    assert torch.allclose(guided_logits(x, y, 3.0), y + 3 * (x - y))


def test_cfg_warns_when_unconditional_branch_untrained(caplog):
    lm = _lm(n_tags=2, max_tags=1)
    with caplog.at_level(logging.WARNING, logger="audiolab"):
        generate(lm, 4, tags=torch.tensor([[1]]), cfg_scale=4.0, temperature=0, trained_unconditional_frac=0.0)
    assert "unconditional_frac=0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audiolab"):
        generate(lm, 4, tags=torch.tensor([[1]]), cfg_scale=1.0, temperature=0, trained_unconditional_frac=0.0)
    assert "unconditional_frac" not in caplog.text


def test_sampling_filters():
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    assert sample_logits(logits, temperature=0).item() == 2
    g = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, 1.0, top_k=2, generator=g).item() for _ in range(200)}
    assert draws == {2, 3}
    # top_p: mass of the top id (~0.93) reaches 0.9 -> only it remains
    draws = {sample_logits(logits, 1.0, top_p=0.9, generator=g).item() for _ in range(100)}
    assert draws == {2}
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, -1.0)


def test_eos_generation_ends_and_cascades():
    lm = _lm(eos=True, delays=[0, 2, 1])
    with torch.no_grad():  # force EOS from the first codebook as soon as it may speak: bias the EOS logit
        lm.heads.bias.view(3, 17)[0, 16] = 50.0
    out = generate(lm, 10, batch=1, temperature=0)
    p = lm.pattern
    assert int(out["lengths"][0]) == 0
    seq = out["seq"][0]
    # every codebook carries exactly one EOS, then PAD
    for k in range(3):
        assert int((seq[k] == p.eos_id).sum()) == 1
        after = seq[k, int((seq[k] == p.eos_id).nonzero()[0]) + 1 :]
        assert (after == p.pad_id).all()


def test_tiny_model_overfits_one_sequence_and_greedy_reproduces_it():
    torch.manual_seed(0)
    lm = TokenLM(n_q=2, card=8, d_model=32, layers=2, heads=2, max_len=64)
    codes = torch.randint(0, 8, (1, 2, 24), generator=torch.Generator().manual_seed(1))
    seq = lm.pattern.build(codes)
    target = lm.pattern.target_ids(seq[..., 1:])
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    lm.train()
    for _ in range(400):
        logits = lm(seq[..., :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 8), target.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mask = target != -100
        if loss.item() < 0.05 and (logits.argmax(-1) == target)[mask].all():
            break
    lm.eval()
    out = generate(lm, 24, prompt=codes[:, :, :1], temperature=0)
    assert torch.equal(out["codes"], codes), (loss.item(), (out["codes"] == codes).float().mean())


def test_bad_inputs_named():
    lm = _lm()
    with pytest.raises(ValueError, match=r"expected a token layout \[B, 3, S\]"):
        lm(torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="prompt codes must be in 0..15"):
        generate(lm, 8, prompt=torch.full((1, 3, 2), 16))
    with pytest.raises(ValueError, match="prompt has 2 codebooks, the model 3"):
        generate(lm, 8, prompt=torch.zeros(1, 2, 2, dtype=torch.long))


def test_bf16_autocast_step_and_generation():
    """The bf16 path (trainer.precision=bf16-mixed on GPU) on CPU autocast: finite loss close to fp32, CE in fp32,
    and cached generation runs."""
    from audiolab.models.tokenlm.patterns import DelayPattern

    lm = _lm()
    codes = torch.randint(0, 16, (2, 3, 10), generator=torch.Generator().manual_seed(0))
    p: DelayPattern = lm.pattern
    seq = p.build(codes)
    target = p.target_ids(seq[..., 1:])

    def loss() -> torch.Tensor:
        logits = lm(seq[..., :-1]).float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 16), target.reshape(-1), ignore_index=-100)

    ref = loss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss()
        out = generate(lm, 8, batch=2, temperature=1.0, seed=0)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert abs(low.item() - ref.item()) < 0.05
    assert out["codes"].shape == (2, 3, 8) and int(out["codes"].max()) < 16
