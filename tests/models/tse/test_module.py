"""TSE recipe: users' parameter count, a 100-step smoke fit, checkpoint round trip, chunked extraction, CLI errors."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from audiolab.models.tse.data import TSEDataModule
from audiolab.models.tse.extract import Extractor, extract_file, load_extractor, main
from audiolab.models.tse.module import TSEModule
from audiolab.models.tse.nets import TSENet, count_parameters
from audiolab.utils.config import CONF_DIR

SR = 16000
TINY = dict(n_fft=256, hop_length=128, encoder="bandsplit", bands=[[250, 2000], [1000, 8000]], emb_dim=8, lstm_hidden=16,
            n_blocks=2, attn_heads=2, attn_qk_dim=2, fusion="concat_project", film=True, output="mask")


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def test_hifi48k_parameter_count_is_near_the_users():
    cfg = _compose(["experiment=tse_hifi48k"])
    net = TSENet(sample_rate=cfg.data.sample_rate, **OmegaConf.to_container(cfg.model.net, resolve=True))
    n = count_parameters(net)
    assert n == pytest.approx(11.79e6, rel=0.05), n  # the users report 11.79 M
    assert net.n_units == 53 and net.sample_rate == 48000


def test_experiments_set_an_objective():
    for name in ("tse_tfgridnet", "tse_hifi48k"):
        cfg = _compose([f"experiment={name}"])
        assert cfg.objective.monitor == "val/si_sdri" and cfg.objective.mode == "max" and cfg.objective.probe == "si_sdri"


@pytest.fixture(scope="module")
def fitted(tse_corpus, tmp_path_factory):
    """A 100-step fit of a tiny extractor on synthetic speakers (the smoke fit), then a saved checkpoint."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("tse_fit")
    dm = TSEDataModule(str(tse_corpus), str(tmp / "cache"), crop_seconds=0.5, enroll_seconds=0.5, batch_size=1,
                       val_mixtures=4, test_mixtures=4, val_fraction=0.3, test_fraction=0.3, mixtures_per_epoch=400)
    module = TSEModule(SR, net=TINY, optim={"lr": 3e-3})
    losses: list[float] = []

    class Rec(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(max_steps=100, accelerator="cpu", logger=False, enable_checkpointing=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Rec()], gradient_clip_val=5.0)
    trainer.fit(module, datamodule=dm)
    from audiolab.callbacks.config_embed import CONFIG_KEY

    ckpt = tmp / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)
    data = torch.load(ckpt, weights_only=False)
    data[CONFIG_KEY] = {"model": {"_target_": "audiolab.models.tse.module.TSEModule", "sample_rate": SR, "net": TINY,
                                  "optim": {"lr": 3e-3}}}
    torch.save(data, ckpt)
    return {"module": module, "losses": losses, "ckpt": ckpt, "dm": dm, "trainer": trainer}


def test_smoke_fit_100_steps_learns(fitted):
    losses = fitted["losses"]
    assert len(losses) == 100 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 1.0  # -SI-SDR falls by more than 1 dB
    assert int(fitted["module"].micro_steps) == 100


def test_checkpoint_round_trip_rebuilds_the_same_net(fitted):
    net, sr = load_extractor(fitted["ckpt"])
    assert sr == SR and not net.training
    ref = fitted["module"].net.eval()
    for (k, a), (_, b) in zip(net.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k
    x, e = torch.randn(1, 8000), torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.equal(net(x, e), ref(x, e))


def test_test_pass_reports_all_metrics_and_rows(fitted, tmp_path):
    module = fitted["module"]
    module.report_dir = tmp_path
    res = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).test(module, datamodule=fitted["dm"])[0]
    for k in ("test/si_sdri", "test/si_sdri_median", "test/si_sdri_pct_below_0", "test/sdri", "test/pesq",
              "test/mixture_pesq", "test/stoi", "test/mixture_stoi", "test/ta_suppression_db", "test/swap_follow_pct",
              "test/swap_si_sdr_other", "test/mixture_si_sdr"):
        assert k in res and math.isfinite(res[k]), k
    rows = (tmp_path / "test_rows.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3


def _long_mixture(seconds: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    from audiolab.models.tse.corpus import synth_utterance

    a = torch.from_numpy(synth_utterance(120, (500, 1500), seconds, 1))
    b = torch.from_numpy(synth_utterance(210, (700, 2300), seconds, 2))
    e = torch.from_numpy(synth_utterance(120, (500, 1500), 2.0, 3))
    return a + b, e


def test_chunked_extraction_equals_whole_file(fitted):
    from audiolab.losses.sdr import si_sdr

    net = fitted["module"].net.eval()
    mix, enroll = _long_mixture()
    whole = Extractor(net, SR, chunk_seconds=100.0)
    whole.set_enrollment(enroll)
    chunked = Extractor(net, SR, chunk_seconds=2.0, context_seconds=1.0)
    chunked.set_enrollment(enroll)
    y_whole, y_chunk = whole.extract(mix), chunked.extract(mix)
    assert y_chunk.shape == y_whole.shape == mix.shape
    agree = float(si_sdr(y_chunk[None], y_whole[None]))
    print(f"chunked vs whole: {agree:.1f} dB")
    assert agree > 20.0  # dB: within tolerance of whole-file processing
    # a file that fits one window is processed whole: identical
    short = Extractor(net, SR, chunk_seconds=5.0, context_seconds=0.5)
    short.set_enrollment(enroll)
    assert torch.equal(short.extract(mix[: 3 * SR]), whole.extract(mix[: 3 * SR]))


def test_extract_cli_resamples_and_names_bad_input(fitted, tmp_path, capsys):
    mix, enroll = _long_mixture(3.0)
    import torchaudio

    sf.write(tmp_path / "mix.wav", torchaudio.functional.resample(mix, SR, 22050).numpy(), 22050)  # other rate
    sf.write(tmp_path / "enroll.wav", enroll.numpy(), SR)
    info = extract_file(fitted["ckpt"], tmp_path / "mix.wav", tmp_path / "enroll.wav", tmp_path / "out.wav")
    out, sr = sf.read(tmp_path / "out.wav")
    assert sr == 22050 and abs(len(out) - 3 * 22050) <= 1 and info["model_rate"] == SR
    sf.write(tmp_path / "short.wav", enroll[: SR // 2].numpy(), SR)
    with pytest.raises(SystemExit, match="0.50 s long; at least 1.00 s"):
        main([str(tmp_path / "mix.wav"), str(tmp_path / "short.wav"), str(tmp_path / "o.wav"), "--ckpt", str(fitted["ckpt"])])
    sf.write(tmp_path / "silent.wav", np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(SystemExit, match="is silent"):
        main([str(tmp_path / "silent.wav"), str(tmp_path / "enroll.wav"), str(tmp_path / "o.wav"), "--ckpt", str(fitted["ckpt"])])
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "nope.wav"), str(tmp_path / "enroll.wav"), str(tmp_path / "o.wav"), "--ckpt", str(fitted["ckpt"])])


def test_extractor_requires_enrollment_first(fitted):
    ex = Extractor(fitted["module"].net, SR)
    with pytest.raises(RuntimeError, match="set_enrollment"):
        ex.extract(torch.randn(SR))
    with pytest.raises(ValueError, match="silent"):
        ex.set_enrollment(torch.zeros(2 * SR))


def test_silent_target_rows_are_treated_as_target_absent():
    module = TSEModule(SR, net=TINY)
    mix = torch.randn(2, 4000)
    batch = {"mixture": mix, "target": torch.stack([torch.zeros(4000), mix[1]]), "present": torch.tensor([True, True])}
    terms = module.loss_terms(0.5 * mix, batch)
    assert float(terms["ta_fraction"]) == 0.5 and math.isfinite(float(terms["loss"]))


def test_unknown_loss_key_is_named():
    with pytest.raises(ValueError, match="model.loss: unknown key 'sisdr'"):
        TSEModule(SR, net=TINY, loss={"sisdr": {"weight": 1.0}})


def test_lr_schedule_warmup_cosine_floor():
    module = TSEModule(SR, net=TINY, optim={"lr": 1e-3, "warmup_steps": 10, "min_lr": 1e-5, "total_steps": 110})
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(120):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5), rel=1e-3)
    assert lrs[110] == pytest.approx(1e-5) and lrs[119] == pytest.approx(1e-5)



def test_gan_fine_tuning_steps_discriminator_and_extractor(tse_corpus, tmp_path):
    torch.manual_seed(0)
    dm = TSEDataModule(str(tse_corpus), str(tmp_path / "cache"), crop_seconds=0.5, enroll_seconds=0.5, batch_size=1,
                       val_mixtures=2, test_mixtures=2, val_fraction=0.3, test_fraction=0.3, mixtures_per_epoch=50)
    module = TSEModule(SR, net=TINY, adversarial={"enabled": True, "n_ffts": [128, 256], "filters": 4, "start_step": 1})
    d0 = [p.detach().clone() for p in module.discriminator.parameters()]
    g0 = [p.detach().clone() for p in module.net.parameters()]
    trainer = L.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    # batch 1: extractor only (start_step 1); batches 2-3: discriminator + extractor -> 1 + 2 * 2 optimizer steps
    assert int(module.generator_steps) == 3 and trainer.global_step == 5
    assert any(not torch.equal(a, b) for a, b in zip(d0, module.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(g0, module.net.parameters()))
    for k in ("train/d_loss", "train/adv", "train/feat", "train/tse"):
        assert math.isfinite(float(trainer.callback_metrics[k])), k


def test_speaker_classification_loss_uses_corpus_speaker_ids(tse_corpus, tmp_path):
    dm = TSEDataModule(str(tse_corpus), str(tmp_path / "cache"), crop_seconds=0.5, enroll_seconds=0.5, batch_size=2,
                       val_mixtures=2, test_mixtures=2, val_fraction=0.3, test_fraction=0.3)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    ids = dm._index.speaker_ids
    assert batch["enroll_speaker_id"].tolist() == [ids[s] for s in batch["enroll_speaker"]]
    module = TSEModule(SR, net=TINY, loss={"speaker_ce": {"weight": 0.5, "n_classes": 16}})
    module.net(batch["mixture"], batch["enrollment"])
    ce = module.speaker_ce(batch["enroll_speaker_id"])
    assert float(ce) == pytest.approx(math.log(16), abs=1.0)  # untrained head: near chance
    small = TSEModule(SR, net=TINY, loss={"speaker_ce": {"weight": 0.5, "n_classes": 2}})
    small.net(batch["mixture"], batch["enrollment"])
    if int(batch["enroll_speaker_id"].max()) >= 2:
        with pytest.raises(ValueError, match="speaker_ce.n_classes=2"):
            small.speaker_ce(batch["enroll_speaker_id"])
    with pytest.raises(ValueError, match="film=true"):
        TSEModule(SR, net={**TINY, "film": False}, loss={"speaker_ce": {"weight": 0.5}})


def test_ema_of_the_separator_is_what_the_checkpoint_and_the_extractor_hold(tse_corpus, tmp_path):
    from audiolab.callbacks.config_embed import CONFIG_KEY
    from audiolab.callbacks.ema import EMA

    torch.manual_seed(0)
    dm = TSEDataModule(str(tse_corpus), str(tmp_path / "cache"), crop_seconds=0.5, enroll_seconds=0.5, batch_size=1,
                       val_mixtures=2, test_mixtures=2, val_fraction=0.3, test_fraction=0.3, mixtures_per_epoch=20)
    module = TSEModule(SR, net=TINY, optim={"lr": 3e-3, "warmup_steps": 0})
    ema = EMA(decay=0.5, submodule="net")
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[ema])
    trainer.fit(module, datamodule=dm)
    ckpt = tmp_path / "ema.ckpt"
    trainer.save_checkpoint(ckpt)
    data = torch.load(ckpt, weights_only=False)
    data[CONFIG_KEY] = {"model": {"_target_": "audiolab.models.tse.module.TSEModule", "sample_rate": SR, "net": TINY}}
    torch.save(data, ckpt)
    net, _ = load_extractor(ckpt)
    loaded = dict(net.named_parameters())
    raw = dict(module.net.named_parameters())
    assert ema.num_updates == 6 and set(ema._shadow) == set(loaded)
    for n, avg in ema._shadow.items():
        assert torch.equal(loaded[n], avg), n  # the extractor gets the average ...
    assert any(not torch.equal(loaded[n], raw[n]) for n in loaded)  # ... which differs from the raw weights
    raw_saved = data["callbacks"][ema.state_key]["raw_weights"]
    assert all(torch.equal(raw_saved[n], raw[n]) for n in raw)  # raw weights travel for resume
