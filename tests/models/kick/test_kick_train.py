"""Kick recipes end to end at debug=fast: VAE -> U-Net on the frozen VAE (checkpoint contents readable with
weights_only=True), clear errors for a missing / mismatched VAE, the generation CLI (reproducible per seed,
sidecars, unknown keywords warned)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab.models.kick.keywords import UnknownKeywordWarning
from audiolab.train import run

QUIET = ["callbacks.media=null"]


def _train(compose_run, out: Path, experiment: str, extra=()):
    cfg = compose_run([f"experiment={experiment}", "debug=fast", *QUIET, *extra], out)
    return run(cfg)


@pytest.fixture(scope="module")
def vae_run(compose_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kick_vae_run")
    result = _train(compose_run, out, "kick_vae")
    assert math.isfinite(result["test/mel_l1"]) and math.isfinite(result["probe/mel_l1"])
    return out


@pytest.fixture(scope="module")
def unet_run(compose_run, tmp_path_factory, vae_run) -> Path:
    out = tmp_path_factory.mktemp("kick_unet_run")
    result = _train(compose_run, out, "kick_unet", [f"model.vae_ckpt={vae_run}", "model.allow_untrained=true",
                                                    "model.evaluation.n_generate=4", "model.evaluation.keyword_n=2"])
    assert math.isfinite(result["test/denoise_mse"])
    assert math.isfinite(result["test/gen_synthetic_kid"]) and "test/gen_keyword_acc_gen_mean" in result
    return out


def test_unet_checkpoint_holds_frozen_vae_vocab_scale_config(unet_run, vae_run):
    ckpt = torch.load(unet_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    kick = ckpt["kick"]
    assert kick["latent_shape"] == [4, 8, 11] and kick["latent_scale"] > 0
    assert kick["vocabulary"]["words"] and "synth" in kick["vocabulary"]["words"]
    assert kick["schedule"]["num_train_timesteps"] == 1000 and kick["schedule"]["clip_sample"] is False
    assert ckpt["audiolab_config"]["model"]["_target_"].endswith("KickDiffusionModule")
    vae = torch.load(vae_run / "checkpoints" / "probe_best.ckpt", map_location="cpu", weights_only=True)
    for k, v in vae["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][k], v), k  # the frozen VAE is the trained one, unchanged
    assert json.loads((unet_run / "generation_metrics.json").read_text())["synthetic"]["n_generated"] >= 2
    # the vocabulary travels inside the state_dict (a buffer): a plain load_state_dict restores it
    from hydra.utils import instantiate

    fresh = instantiate(ckpt["audiolab_config"]["model"], _recursive_=False)
    assert fresh.vocabulary is None
    fresh.load_state_dict(ckpt["state_dict"])
    assert fresh.vocabulary.words == kick["vocabulary"]["words"] and float(fresh.latent_scale) == kick["latent_scale"]


def test_missing_vae_checkpoint_is_a_clear_error(make_run_cfg, tmp_path):
    cfg = make_run_cfg(["experiment=kick_unet", "debug=fast", "model.allow_untrained=false", *QUIET],
                       output_dir=tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="model.vae_ckpt=<kick_vae run folder"):
        run(cfg)


def test_vae_latent_shape_mismatch_is_a_clear_error(make_run_cfg, compose_run, tmp_path):
    other = tmp_path / "vae8"
    _train(compose_run, other, "kick_vae", ["model.vae.latent_channels=8", "test=false"])
    cfg = make_run_cfg(["experiment=kick_unet", "debug=fast", f"model.vae_ckpt={other}", *QUIET],
                       output_dir=tmp_path / "r")
    with pytest.raises(ValueError, match="latent 8x8x11 but this U-Net expects 4x8x11"):
        run(cfg)


def test_generate_cli_reproducible_per_seed_with_sidecars(unet_run, tmp_path):
    from audiolab.models.kick.generate import main

    args = [f"ckpt={unet_run}", "keywords=long,sub", "steps=3", "sampler=ddim", "cfg_scale=3"]
    main([*args, "n=3", "seed=10", f"out_dir={tmp_path / 'a'}", "batch_size=2"])
    main([*args, "n=1", "seed=11", f"out_dir={tmp_path / 'b'}"])
    wavs = sorted((tmp_path / "a").glob("*.wav"))
    assert [w.name for w in wavs] == [f"kick_long_sub_s{s}.wav" for s in (10, 11, 12)]
    a, sr = sf.read(tmp_path / "a" / "kick_long_sub_s11.wav")
    b, _ = sf.read(tmp_path / "b" / "kick_long_sub_s11.wav")
    assert sr == 44100 and a.shape == (88200,)
    np.testing.assert_allclose(a, b, atol=2 / 32767)  # batched row == the seed alone
    side = json.loads((tmp_path / "a" / "kick_long_sub_s11.json").read_text())
    assert side["seed"] == 11 and side["keywords_used"] == ["long", "sub"] and side["settings"]["steps"] == 3
    assert side["settings"]["sampler"] == "ddim" and side["model"]["latent_scale"] > 0
    assert set(side["seconds_per_kick_by_stage"]) == {"unet_s", "vae_s", "vocoder_s", "total_s"}
    with pytest.warns(UnknownKeywordWarning, match=r"unknown keywords ignored: \['wobbly'\]"):
        main([f"ckpt={unet_run}", "keywords=long,wobbly", "steps=2", f"out_dir={tmp_path / 'c'}"])
    assert json.loads((tmp_path / "c" / "kick_long_s0.json").read_text())["keywords_unknown"] == ["wobbly"]
    with pytest.raises(SystemExit, match="sampler must be one of"):
        main([f"ckpt={unet_run}", "sampler=euler"])


def test_pipeline_refuses_a_vae_checkpoint(vae_run):
    from audiolab.models.kick.pipeline import KickPipeline

    with pytest.raises(ValueError, match="holds KickVAEModule, expected one of"):
        KickPipeline.from_checkpoint(vae_run)


@pytest.fixture(scope="module")
def vocoder_run(compose_run, tmp_path_factory) -> Path:
    """10 training clips (40 % val, 40 % test of 48), batch 5 = 2 batches per epoch; 4 batches = 8 optimizer steps
    (D + G per batch); 512-sample crops (the discriminators dominate the cost)."""
    out = tmp_path_factory.mktemp("kick_voc_run")
    result = _train(compose_run, out, "kick_hifigan",
                    ["data.batch_size=5", "data.crop_samples=512", "data.val_fraction=0.4", "data.test_fraction=0.4",
                     "trainer.max_steps=8", "model.optim.lr_decay=0.5", "trainer.val_check_interval=4",
                     "model.adversarial.start_step=0",
                     "callbacks.probe.every_n_steps=4"])
    assert math.isfinite(result["test/mel_l1"]) and math.isfinite(result["test/mrstft"])
    return out


def test_vocoder_lr_decays_once_per_epoch(vocoder_run):
    ckpt = torch.load(vocoder_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 8
    for opt, sched in zip(ckpt["optimizer_states"], ckpt["lr_schedulers"]):
        assert sched["last_epoch"] == 2  # 2 epochs of 2 batches: per epoch, not per optimizer step (8) or batch (4)
        assert opt["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5 ** 2)
    assert int(ckpt["state_dict"]["generator_steps"]) == 4


def test_vocoder_whole_clips_and_vae_finetuning(make_run_cfg, tmp_path, vae_run):
    # generator-only steps (adversarial.start_step): the discriminators on whole clips cost minutes on 2 cores
    cfg = make_run_cfg(["experiment=kick_hifigan", "debug=fast", *QUIET, "data.crop_samples=null", "data.batch_size=2",
                        "trainer.max_steps=2", "test=false", "model.adversarial.start_step=100",
                        f"model.finetune_vae_ckpt={vae_run}", "+model.vae.channels=[4,8,8,16]"],
                       output_dir=tmp_path / "ft")
    from hydra.utils import instantiate

    from audiolab.models.kick.vocoder import KickVocoderModule

    module: KickVocoderModule = instantiate(cfg.model, _recursive_=False)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (2, 173 * 512) and batch["mel"].shape == (2, 128, 173)
    result = run(cfg)
    assert result["output_dir"]
    ckpt = torch.load(tmp_path / "ft" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    vae = torch.load(vae_run / "checkpoints" / "probe_best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for k, v in vae.items():
        assert torch.equal(ckpt["state_dict"][k], v), k  # the frozen VAE that made the input mels
    assert module.vae is not None


def test_pipeline_stores_vae_and_vocoder_and_generates_alone(compose_run, tmp_path, vae_run, vocoder_run):
    from audiolab.models.kick.pipeline import KickPipeline

    out = tmp_path / "pipe"
    _train(compose_run, out, "kick_pipeline", [f"model.vae_ckpt={vae_run}", f"model.vocoder_ckpt={vocoder_run}",
                                               "model.allow_untrained=false", "test=false"])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    voc = torch.load(vocoder_run / "checkpoints" / "probe_best.ckpt", map_location="cpu", weights_only=True)
    for k, v in voc["state_dict"].items():
        if k.startswith("generator."):
            assert torch.equal(ckpt["vocoder." + k[len("generator."):]], v), k
    pipe = KickPipeline.from_checkpoint(out)  # no vocoder= needed
    gen = pipe.generate([["long"], []], [0, 1], steps=2)
    assert gen.audio.shape == (2, 88200) and torch.isfinite(gen.audio).all()
    assert float(gen.audio.abs().max()) <= 10 ** (-1 / 20) + 1e-6
