"""Codec training end to end (debug=fast on a synthetic audio folder) and the module's loss/optimizer paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab.train import run
from audiolab.utils.config import CONF_DIR

CODEC_EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("codec_*.yaml"))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def audio_root(tmp_path_factory) -> Path:
    """speech/ and music/ folders of 1.5-2.5 s harmonic tones with noise, at 16 and 44.1 kHz."""
    root = tmp_path_factory.mktemp("codec_audio")
    rng = np.random.default_rng(0)
    for cat, sr in (("speech", 16000), ("music", 44100)):
        for i in range(4):
            n = int(sr * (1.5 + 0.25 * i))
            t = np.arange(n) / sr
            f0 = 110.0 * (i + 1)
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * 0.2 + 0.01 * rng.standard_normal(n)
            (root / cat).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / cat / f"{cat}_{i}.wav"), x.astype(np.float32), sr)
    return root


def _cfg(make_run_cfg, tmp_path, audio_root, experiment, extra=()):
    return make_run_cfg([f"experiment={experiment}", "debug=fast", f"data.root={audio_root}", "data.sample_rate=16000",
                         *extra], output_dir=tmp_path / "run")


def test_codec_experiments_found():
    assert {"codec_unbounded", "codec_tanh_scale", "codec_tanh"} <= set(CODEC_EXPERIMENTS)


@pytest.mark.parametrize("experiment", CODEC_EXPERIMENTS)
def test_codec_experiment_trains_debug_fast(fast_run, experiment):
    """Codec specifics of the shared debug=fast fit (the run folder itself is checked in tests/test_framework.py)."""
    r = fast_run(experiment)
    result, out = r.result, r.out
    for key in ("test/snr_db", "test/si_snr_db", "test/mel_distance", "test/stft_distance", "test/rms_ratio",
                "test/output_peak", "test/clipped_fraction", "test/codebook_usage", "test/codebook_perplexity",
                "test/bitrate_kbps", "probe/mel_distance"):
        assert key in result and math.isfinite(result[key]), (key, sorted(result))
    summary = json.loads((out / "probe_summary.json").read_text())
    assert summary["metric"] == "probe/mel_distance"
    assert {"snr_db", "rms_ratio", "output_peak", "si_snr_db"} <= set(summary["history"][-1])
    assert (out / "checkpoints" / "probe_best.ckpt").exists() and (out / "checkpoints" / "last.ckpt").exists()
    media = sorted((out / "media").glob("step_*"))
    assert media, "no media folders"
    last = media[-1]
    assert (last / "ex0_input.wav").exists() and (last / "ex0_output.wav").exists()
    assert (last / "probe_curves.png").exists() and (last / "ex0_waveform.png").exists()
    # bitrate: n_q x log2(bins) x frame rate (debug: 4 x 4 bits x sample_rate / hop 8)
    assert result["test/bitrate_kbps"] == pytest.approx(4 * 4 * int(r.cfg.data.sample_rate) / 8 / 1000)


def test_adversarial_balancer_and_manual_optimization(make_run_cfg, tmp_path, audio_root):
    """GAN path: discriminator starts at generator step 2; global_step then counts both optimizers."""
    cfg = _cfg(make_run_cfg, tmp_path, audio_root, "codec_unbounded",
               ["model.loss.adversarial.enabled=true", "model.loss.adversarial.start_step=2", "model.loss.balancer.enabled=true",
                "model.optim.gradient_clip_generator=1.0", "model.optim.gradient_clip_discriminator=1.0",
                "trainer.max_steps=6", "test=false",
                "+model.optim.scheduler={_target_: audiolab.utils.optim.ExponentialDecayLR, _partial_: true, half_life_steps: 1}"])
    from hydra.utils import instantiate

    result = run(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # 2 generator-only steps, then 2 optimizer steps per batch: 2 + 2 * 2 = 6 -> 4 generator steps
    assert ckpt["global_step"] == 6
    assert int(ckpt["state_dict"]["generator_steps"]) == 4
    assert any(k.startswith("discriminator.") for k in ckpt["state_dict"])
    # both schedulers stepped once per optimizer step: lr halves per step (half-life 1)
    base = float(cfg.model.optim.optimizer.lr)
    lrs = [s["_last_lr"][0] for s in ckpt["lr_schedulers"]]
    assert lrs[0] == pytest.approx(base * 0.5**4) and lrs[1] == pytest.approx(base * 0.5**2)
    assert math.isfinite(result["train/d_loss"]) and math.isfinite(result["train/adv"])
    # per sub-discriminator terms (debug n_ffts 256, 128) and pre-clip gradient norms (audiolab.adversarial.GANStep)
    for key in ("train/d_loss/stft256", "train/adv/stft128", "train/feat/stft256", "train/grad_norm_generator",
                "train/grad_norm_discriminator"):
        assert math.isfinite(result[key]), key
    assert 0.0 <= result["train/balancer_ratio_l1"] <= 1.0
    module = instantiate(cfg.model, _recursive_=False)
    assert module.discriminator is not None


def _module(output: str, normalization: str = "none"):
    from audiolab.models.codec.module import CodecModule

    return CodecModule(sample_rate=16000, codec={"output": output, "normalization": normalization,
                                                  "seanet": {"dimension": 8, "n_filters": 4, "ratios": [4, 2], "lstm": 0,
                                                             "causal": output != "tanh"},
                                                  "quantizer": {"n_q": 2, "bins": 8, "kmeans_iters": 1}},
                       loss={"mel": {"window_sizes": [64, 128], "n_mels": 16}}, optim={"optimizer": {
                           "_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}})


@pytest.mark.parametrize("output", ["unbounded", "tanh", "tanh_scale"])
def test_output_modes_bound_or_not(output):
    """Scaling the last conv by 100 drives an unbounded decoder past 1; tanh modes stay inside (-1, 1)."""
    torch.manual_seed(0)
    m = _module(output).eval()
    last = m.codec.decoder.layers[-1]
    with torch.no_grad():
        for p in last.parameters():
            p.mul_(100.0)
    y = m.codec(torch.randn(2, 1600) * 0.3)["audio"]
    peak = float(y.detach().abs().max())
    if output == "unbounded":
        assert peak > 1.0
    else:
        assert peak <= 1.0  # tanh saturates at exactly 1.0 in float32
    if output == "tanh_scale":
        assert m.codec.output_scale is not None and m.codec.output_scale.requires_grad
    else:
        assert m.codec.output_scale is None


def test_segment_rms_normalization_sends_scales_and_restores_level():
    """EnCodec-style: scale = RMS per segment; the decoder output is multiplied back, so a 10x louder input
    gives a 10x louder output with the same codes."""
    torch.manual_seed(0)
    m = _module("unbounded", "segment_rms").eval()
    x = torch.randn(1, 16000) * 0.05
    codes, scales = m.codec.encode(x)
    codes10, scales10 = m.codec.encode(10 * x)
    assert scales.shape == (1, 1) and torch.allclose(scales10, 10 * scales, rtol=1e-5)
    assert torch.equal(codes, codes10)
    y, y10 = m.codec.decode(codes, scales, 16000), m.codec.decode(codes10, scales10, 16000)
    assert torch.allclose(y10, 10 * y, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="segment_rms"):
        m.codec.decode(codes)


def test_bad_config_values_are_named():
    from audiolab.models.codec.module import CodecModule

    with pytest.raises(ValueError, match="model.codec.output"):
        _module("sigmoid")
    with pytest.raises(ValueError, match="bandwidth|kbps"):
        CodecModule(sample_rate=16000, codec={"seanet": {"dimension": 8, "n_filters": 4, "ratios": [4, 2]},
                                              "quantizer": {"n_q": 2, "bins": 8}},
                    loss={}, optim={"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}},
                    eval_bandwidths=[500.0])


def test_missing_data_root_says_make_data(make_run_cfg, tmp_path):
    cfg = make_run_cfg(["experiment=codec_unbounded", "debug=fast", f"data.root={tmp_path / 'nope'}"], output_dir=tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="make data"):
        run(cfg)

