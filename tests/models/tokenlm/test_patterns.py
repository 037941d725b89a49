"""Delay / parallel patterns: round trips, the audiocraft worked example, masks, and the ``transformers`` MusicGen and
Dia implementations as independent references."""

from __future__ import annotations

import pytest
import torch

from audiolab.models.tokenlm.patterns import DIA_DELAYS, UNKNOWN, DelayPattern


def _codes(b: int, k: int, t: int, card: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, card, (b, k, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind,delays", [("delay", None), ("delay", [0, 3, 1]), ("parallel", None)])
@pytest.mark.parametrize("k,t", [(1, 1), (3, 4), (3, 17), (4, 1), (2, 50)])
@pytest.mark.parametrize("eos", [False, True])
def test_round_trip(kind, delays, k, t, eos):
    if delays is not None and len(delays) != k:
        delays = (delays * k)[:k]
    p = DelayPattern(k, 32, kind=kind, delays=delays, eos=eos)
    codes = _codes(2, k, t, 32)
    seq = p.build(codes)
    assert seq.shape == (2, k, p.seq_len(t))
    assert p.n_frames(seq.shape[2]) == t
    assert torch.equal(p.revert(seq), codes)
    # every code appears exactly once in the layout; the rest are specials
    assert int(p.code_mask(seq.shape[2]).sum()) == k * t
    assert torch.equal(seq[:, p.code_mask(seq.shape[2])].sort(dim=-1).values,
                       codes.reshape(2, -1).sort(dim=-1).values)


def test_worked_example_audiocraft():
    """audiocraft docstring, T=4, K=3: [[S,1,2,3,4],[S,S,1,2,3],[S,S,S,1,2]] (its keep_only_valid_steps layout)."""
    p = DelayPattern(3, 100)
    codes = torch.tensor([[[1, 2, 3, 4]] * 3])
    seq = p.build(codes)
    s = p.bos_id
    assert seq[0, :, :5].tolist() == [[s, 1, 2, 3, 4], [s, s, 1, 2, 3], [s, s, s, 1, 2]]
    # the full layout continues with the delayed tails and PAD
    pad = p.pad_id
    assert seq[0].tolist() == [[s, 1, 2, 3, 4, pad, pad], [s, s, 1, 2, 3, 4, pad], [s, s, s, 1, 2, 3, 4]]


@pytest.mark.parametrize("eos", [False, True])
def test_loss_mask_exactly_codes_and_one_eos(eos):
    p = DelayPattern(4, 16, delays=[0, 2, 1, 5], eos=eos)
    codes = _codes(3, 4, 9, 16)
    lengths = torch.tensor([9, 6, 9])
    ended = torch.tensor([True, True, False])
    seq = p.build(codes, lengths, ended)
    tgt = seq[..., 1:]
    mask = p.loss_mask(tgt)
    for b in range(3):
        for k in range(4):
            row, m = tgt[b, k], mask[b, k]
            codes_at = (row < 16)
            n_eos = int((row == p.eos_id).sum())
            # targets: exactly the real codes (length of the item), plus one EOS iff eos and the item ended
            assert int(codes_at.sum()) == int(lengths[b])
            assert n_eos == (1 if eos and bool(ended[b]) else 0)
            assert torch.equal(m, codes_at | (row == p.eos_id))
            assert not m[(row == p.bos_id) | (row == p.pad_id)].any()
    ids = p.target_ids(tgt)
    assert set(ids[mask].unique().tolist()) <= set(range(16)) | ({16} if eos else set())
    assert (ids[~mask] == -100).all()


def test_bad_config():
    with pytest.raises(ValueError, match="3 entries for n_q=4"):
        DelayPattern(4, 16, delays=[0, 1, 2])
    with pytest.raises(ValueError, match="unknown"):
        DelayPattern(4, 16, kind="flatten")
    with pytest.raises(ValueError, match="parallel' takes no delays"):
        DelayPattern(2, 16, kind="parallel", delays=[0, 1])


def test_template_places_prompt_once_and_fixes_specials():
    p = DelayPattern(3, 16)
    prompt = _codes(2, 3, 5, 16)
    tpl = p.template(2, 8, prompt)
    # filling the unknowns with the true continuation must give exactly build(full codes)
    full = torch.cat([prompt, _codes(2, 3, 3, 16, seed=1)], dim=2)
    ref = p.build(full)
    known = tpl != UNKNOWN
    assert torch.equal(tpl[known], ref[known])
    assert torch.equal(p.revert(torch.where(known, tpl, ref)), full)
    # unknown positions are exactly the codes of frames >= 5
    t_idx = torch.arange(tpl.shape[2]).unsqueeze(0) - 1 - torch.tensor(p.delays).unsqueeze(1)
    assert torch.equal((tpl == UNKNOWN)[0], (t_idx >= 5) & (t_idx < 8))
    assert p.first_unknown_step(tpl) == 1 + 5


def test_matches_transformers_musicgen():
    """``MusicgenForCausalLM.build_delay_pattern_mask`` (one id P for BOS and PAD) equals our layout with both
    specials mapped to P, for the decoder-start column + T codes."""
    transformers = pytest.importorskip("transformers")
    k, t, card = 4, 7, 32
    cfg = transformers.MusicgenDecoderConfig(vocab_size=card, num_codebooks=k, hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, ffn_dim=32, max_position_embeddings=64,
                                             pad_token_id=card, decoder_start_token_id=card, bos_token_id=card)
    hf = transformers.MusicgenForCausalLM(cfg).eval()
    codes = _codes(2, k, t, card)
    start = torch.full((2, k, 1), card)
    ids = torch.cat([start, codes], dim=2).reshape(2 * k, -1)
    p = DelayPattern(k, card)
    _, pattern_mask = hf.build_delay_pattern_mask(ids, pad_token_id=card, max_length=p.seq_len(t))
    ours = p.build(codes)
    ours = torch.where(ours >= card, torch.full_like(ours, card), ours)
    assert torch.equal(pattern_mask.reshape(2, k, -1), ours)


def test_matches_transformers_dia():
    """Dia's processor (training, ``output_labels=True``): prefill [BOS, codes, EOS, PAD x max_delay], delayed with
    ``build_indices`` / ``apply_audio_delay``; labels = ids[1:] with BOS/PAD -> -100. Ours with eos=True and Dia's
    delays gives the same ids (ours: PAD=card, BOS=card+1, EOS=card+2; Dia: EOS=card, PAD=card+1, BOS=card+2)."""
    pytest.importorskip("transformers")
    from transformers.models.dia.processing_dia import DiaProcessor

    card, t = 1024, 20
    delays = list(DIA_DELAYS)
    k, d = len(delays), max(delays)
    codes = _codes(2, k, t, card)
    dia_eos, dia_pad, dia_bos = 1024, 1025, 1026
    prefill = torch.full((2, 1 + t + 1 + d, k), dia_pad, dtype=torch.long)
    prefill[:, 0] = dia_bos
    prefill[:, 1 : 1 + t] = codes.transpose(1, 2)
    prefill[:, 1 + t] = dia_eos
    idx = DiaProcessor.build_indices(bsz=2, seq_len=prefill.shape[1], num_channels=k, delay_pattern=delays, revert=False)
    dia_ids = DiaProcessor.apply_audio_delay(prefill, pad_token_id=dia_pad, bos_token_id=dia_bos, precomputed_idx=idx)
    labels = dia_ids[:, 1:].clone()
    labels[(labels == dia_pad) | (labels == dia_bos)] = -100

    p = DelayPattern(k, card, delays=delays, eos=True)
    ours = p.build(codes)
    remap = {p.pad_id: dia_pad, p.bos_id: dia_bos, p.eos_id: dia_eos}
    mapped = ours.clone()
    for a, b in remap.items():
        mapped[ours == a] = b
    assert torch.equal(mapped.transpose(1, 2), dia_ids)
    ours_labels = p.target_ids(ours[..., 1:])  # EOS -> class `card` = Dia's EOS id 1024 as well
    assert torch.equal(ours_labels.transpose(1, 2), labels)
    # Dia's revert (delay removed, then the last max_delay steps dropped) gives the codes back, as ours does
    ridx = DiaProcessor.build_indices(bsz=2, seq_len=dia_ids.shape[1], num_channels=k, delay_pattern=delays, revert=True)
    reverted = DiaProcessor.apply_audio_delay(dia_ids, pad_token_id=-1, bos_token_id=-1, precomputed_idx=ridx)
    assert torch.equal(reverted[:, 1 : 1 + t].transpose(1, 2), p.revert(ours))
