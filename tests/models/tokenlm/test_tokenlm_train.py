"""Token-LM experiments end to end (debug=fast) on a token export made by a tiny codec: training, probe metrics,
demos decoded to audio through the codec named in the manifest, evaluate, and the recipe's knobs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from audiolab.evaluate import evaluate
from audiolab.train import run
from audiolab.utils.config import CONF_DIR

TOKENLM_EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("tokenlm_*.yaml"))


def _cfg(make_run_cfg, tmp_path, token_dir, experiment, extra=(), run="run"):
    return make_run_cfg([f"experiment={experiment}", "debug=fast", f"data.root={token_dir}", "model.card=16",
                         "data.crop_frames=24", *extra], output_dir=tmp_path / run)


def test_experiments_found():
    assert {"tokenlm_delay", "tokenlm_overfit", "tokenlm_dia_delays"} <= set(TOKENLM_EXPERIMENTS)


@pytest.mark.parametrize("experiment", TOKENLM_EXPERIMENTS)
def test_experiment_trains_debug_fast(make_run_cfg, tmp_path, debug_tokens, experiment):
    """`debug=fast` alone (what the framework's per-experiment tests run) reads $AUDIOLAB_DEBUG_TOKENS (tests/conftest.py:
    K=4 x 1024 tokens of a tiny codec) and trains; demos decode through the codec the manifest names."""
    cfg = make_run_cfg([f"experiment={experiment}", "debug=fast"], output_dir=tmp_path / "run")
    assert cfg.data.root == str(debug_tokens)
    result = run(cfg)
    out = tmp_path / "run"
    for key in ("test/ce", "test/acc", "test/ce_cb0", "test/ce_cb3", "test/ppl", "probe/ce"):
        assert key in result and math.isfinite(result[key]), (key, sorted(result))
    hist = json.loads((out / "probe_summary.json").read_text())["history"]
    for key in ("ce", "train_ce", "entropy", "cont_acc_t0", "cont_acc_t05", "cont_acc_t1", "gen_coverage_t1",
                "gen_entropy_t1"):
        assert key in hist[-1], (key, sorted(hist[-1]))
    assert 0.0 <= hist[-1]["cont_acc_t0"] <= 1.0
    assert (out / "checkpoints" / "probe_best.ckpt").exists() and (out / "checkpoints" / "last.ckpt").exists()
    media = sorted((out / "media").glob("step_*"))[-1]
    # demos decoded through the codec named in the token manifest (model.codec=auto)
    for name in ("ex0_reference.wav", "ex0_t0_seed0.wav", "ex0_t05_seed0.wav", "ex0_t1_seed0.wav",
                 "ex0_tokens.png", "ce_curves.png", "demo_codes.npz"):
        assert (media / name).exists(), (name, sorted(p.name for p in media.iterdir()))
    metrics = (out / "csv").rglob("metrics.csv") if (out / "csv").exists() else out.rglob("metrics.csv")
    header = next(iter(metrics)).read_text().splitlines()[0]
    for col in ("train/grad_norm", "train/clip_fraction", "data/coverage_cb0", "data/unigram_ce", "val/ce"):
        assert col in header, col


@pytest.fixture(scope="module")
def delay_run(compose_run, tmp_path_factory, token_dir):
    out = tmp_path_factory.mktemp("tokenlm_delay_run")
    cfg = compose_run(["experiment=tokenlm_delay", "debug=fast", f"data.root={token_dir}", "model.card=16",
                       "data.crop_frames=24"], out)
    return out, run(cfg)


def test_evaluate_reproduces_test_metric(delay_run, tmp_path):
    _, result = delay_run
    ev = evaluate(result["tested_checkpoint"], tmp_path / "eval", accelerator="cpu")
    assert ev["metrics"]["test/ce"] == pytest.approx(result["test/ce"], rel=1e-5)


def test_generate_cli_writes_wav_and_sidecar(delay_run, tmp_path, token_dir, caplog):
    import logging

    import soundfile as sf

    from audiolab.models.tokenlm.generate import main

    out_dir, _ = delay_run
    prompt = next((token_dir.parent).glob("tokenlm_audio*/melodic/piano/*.wav"))
    with caplog.at_level(logging.WARNING, logger="audiolab"):
        side = main([f"ckpt={out_dir}", "tags=melodic,piano", "seconds=0.02", "temperature=0.7", "top_k=5",
                     "cfg_scale=3", "seed=1", f"prompt={prompt}", "prompt_seconds=0.005", "n=2",
                     f"out={tmp_path / 'gen.wav'}"])
    wavs = [tmp_path / "gen_0.wav", tmp_path / "gen_1.wav"]
    for w in wavs:
        audio, sr = sf.read(str(w))
        assert sr == 16000 and len(audio) == 40 * 8  # 0.02 s at 2000 Hz frames, hop 8
    meta = json.loads((tmp_path / "gen.json").read_text())
    assert meta == side
    for key, value in (("cfg_scale", 3.0), ("seed", 1), ("top_k", 5), ("temperature", 0.7), ("frames", 40),
                       ("prompt_frames", 10), ("tags", ["melodic", "piano"]), ("n", 2)):
        assert meta[key] == value, key
    assert meta["trained_unconditional_frac"] == 0.2 and meta["warnings"] == []
    # same seed -> same audio; the prompt's codes are kept
    again = main([f"ckpt={out_dir}", "tags=melodic,piano", "seconds=0.02", "temperature=0.7", "top_k=5",
                  "cfg_scale=3", "seed=1", f"prompt={prompt}", "prompt_seconds=0.005", "n=2",
                  f"out={tmp_path / 'again.wav'}"])
    assert again["lengths_frames"] == side["lengths_frames"]
    assert (sf.read(str(tmp_path / "again_0.wav"))[0] == sf.read(str(wavs[0]))[0]).all()
    assert torch.is_grad_enabled()  # the CLI does not switch autograd off for its caller
    with pytest.raises(SystemExit, match="not in the model's vocabulary"):
        main([f"ckpt={out_dir}", "tags=dubstep", "seconds=0.01", f"out={tmp_path / 'x.wav'}"])


def test_model_data_mismatch_is_named(make_run_cfg, tmp_path, token_dir):
    with pytest.raises(ValueError, match="tokens have K=4 codebooks but model.n_q=3"):
        run(_cfg(make_run_cfg, tmp_path, token_dir, "tokenlm_delay", ["model.n_q=3"]))
    with pytest.raises(ValueError, match="cardinality 16 but the model expects 1024"):
        run(_cfg(make_run_cfg, tmp_path, token_dir, "tokenlm_delay", ["model.card=1024"], run="run2"))


def test_codec_mismatch_is_named(tmp_path, tiny_codec):
    from audiolab.models.tokenlm.codec_io import CodecMismatchError, load_codec_for_tokens

    from .conftest import make_tiny_codec

    other = make_tiny_codec(tmp_path / "bins8.ckpt", bins=8)
    with pytest.raises(CodecMismatchError, match="codebooks of 8 codes, but the LM's tokens have cardinality 16"):
        load_codec_for_tokens(other, n_q=4, card=16)
    with pytest.raises(CodecMismatchError, match="4 codebooks, but the LM predicts K=6"):
        load_codec_for_tokens(tiny_codec, n_q=6, card=16)
    with pytest.raises(CodecMismatchError, match="frame rate 2000 Hz, but the tokens were made at 50 Hz"):
        load_codec_for_tokens(tiny_codec, n_q=4, card=16, frame_rate=50)


def test_optimizer_groups_and_schedule(make_run_cfg, tmp_path, token_dir):
    from hydra.utils import instantiate

    cfg = _cfg(make_run_cfg, tmp_path, token_dir, "tokenlm_delay", ["model.optim.warmup_steps=10"])
    module = instantiate(cfg.model, _recursive_=False)

    class _T:  # configure_optimizers reads trainer.max_steps only
        max_steps = 110

    module._trainer = _T()
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert opt.defaults["betas"] == (0.9, 0.95)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    assert all(id(e.weight) not in decayed for e in module.lm.embeddings)
    assert id(module.lm.heads.weight) in decayed and id(module.lm.heads.bias) not in decayed
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    base = float(cfg.model.optim.lr)
    assert lrs[0] == pytest.approx(base / 10) and lrs[9] == pytest.approx(base)
    assert lrs[60] == pytest.approx(base * 0.5, rel=1e-6) and lrs[-1] < 0.01 * base


def test_conditioning_dropout_and_tag_order(make_run_cfg, tmp_path, token_dir):
    from hydra.utils import instantiate

    cfg = _cfg(make_run_cfg, tmp_path, token_dir, "tokenlm_delay", ["model.conditioning.unconditional_frac=0.5"])
    module = instantiate(cfg.model, _recursive_=False)
    tags = [["percussive", "melodic"]] * 400
    ids = module.encode_tags(tags, 400, train=False)
    vocab = module.vocabulary
    expect = sorted([vocab.index("melodic") + 1, vocab.index("percussive") + 1])
    assert (ids == torch.tensor(expect)).all()  # fixed (vocabulary) order, never dropped at inference
    torch.manual_seed(0)
    dropped = (module.encode_tags(tags, 400, train=True) == 0).all(dim=1).float().mean().item()
    assert 0.4 < dropped < 0.6

