"""EMA over a named submodule: update math, the averaged-weights context, checkpoints (averaged state_dict, raw weights
for resume), and a DDSP run in which probe, test and the loader all see the average."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from audiolab.callbacks.ema import EMA, averaged_weights, find_ema
from audiolab.utils.checkpoint import load_trained, read_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "audiolab"


class Toy(nn.Module):
    """A trained net and a second net (a discriminator, a frozen codec) that must not be averaged."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 2)
        self.disc = nn.Linear(2, 1)
        self.register_buffer("count", torch.zeros(()))


def _fake_trainer(ema: EMA, step: int = 0) -> SimpleNamespace:
    return SimpleNamespace(callbacks=[ema], global_step=step)


def _train_steps(ema: EMA, module: Toy, values: list[float]) -> None:
    """Set net's weights to each value in turn (an 'optimizer step'), then call the callback's batch-end hook."""
    trainer = _fake_trainer(ema)
    ema.on_fit_start(trainer, module)
    for i, v in enumerate(values, start=1):
        with torch.no_grad():
            for p in module.net.parameters():
                p.fill_(v)
            for p in module.disc.parameters():
                p.fill_(100 + v)
        trainer.global_step = i
        ema.on_train_batch_end(trainer, module, None, None, i - 1)


@pytest.mark.parametrize("warmup", [False, True])
def test_update_matches_closed_form(warmup):
    values = [1.0, 2.0, 4.0, -1.0, 0.5, 3.0]
    decay = 0.9
    module, ema = Toy(), EMA(decay=decay, submodule="net", warmup=warmup)
    _train_steps(ema, module, values)
    expected = values[0]  # the first update copies the weights
    for n, v in enumerate(values[1:], start=1):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        expected = d * expected + (1 - d) * v
    assert ema.num_updates == len(values)
    for name, t in ema._shadow.items():
        np.testing.assert_allclose(t.numpy(), np.full(t.shape, expected), rtol=1e-6, err_msg=name)
    assert set(ema._shadow) == {"weight", "bias"}, "only the named submodule is averaged"


def test_start_step_and_every_n():
    module, ema = Toy(), EMA(decay=0.5, submodule="net", start_step=2, update_every_n_steps=2)
    _train_steps(ema, module, [1.0, 2.0, 3.0, 4.0, 5.0])
    # updates after optimizer steps 2 and 4: copy 2.0, then 0.5 * 2 + 0.5 * 4
    assert ema.num_updates == 2
    assert torch.allclose(ema._shadow["weight"], torch.full((2, 3), 3.0))


def test_no_update_without_optimizer_step():
    module, ema = Toy(), EMA(decay=0.5, submodule="net")
    trainer = _fake_trainer(ema, step=0)
    ema.on_fit_start(trainer, module)
    ema.on_train_batch_end(trainer, module, None, None, 0)  # gradient accumulation: global_step did not move
    assert ema.num_updates == 0 and not ema.has_average


def test_averaged_weights_context_swaps_only_the_submodule_and_restores():
    module, ema = Toy(), EMA(decay=0.5, submodule="net")
    _train_steps(ema, module, [1.0, 3.0])  # average 2.0, raw 3.0, disc raw 103
    trainer = _fake_trainer(ema)
    assert find_ema(trainer) is ema
    with averaged_weights(trainer, module):
        assert torch.all(module.net.weight == 2.0) and torch.all(module.disc.weight == 103.0)
        with averaged_weights(trainer, module):  # re-entrant: still the average, restored once
            assert torch.all(module.net.weight == 2.0)
        assert torch.all(module.net.weight == 2.0)
    assert torch.all(module.net.weight == 3.0)
    with averaged_weights(SimpleNamespace(callbacks=[]), module):  # no EMA: a no-op
        assert torch.all(module.net.weight == 3.0)


def test_checkpoint_holds_average_and_restores_raw():
    module, ema = Toy(), EMA(decay=0.5, submodule="net")
    _train_steps(ema, module, [1.0, 3.0])
    checkpoint = {"state_dict": module.state_dict(), "callbacks": {ema.state_key: ema.state_dict()}}
    ema.on_save_checkpoint(_fake_trainer(ema), module, checkpoint)
    assert torch.all(checkpoint["state_dict"]["net.weight"] == 2.0), "state_dict must hold the averaged weights"
    assert torch.all(checkpoint["state_dict"]["disc.weight"] == 103.0), "the discriminator is not averaged"
    assert torch.all(module.net.weight == 3.0), "saving must not change the model"
    # resume into a fresh module: Lightning loads state_dict (the average), then the callback hooks run
    fresh, ema2 = Toy(), EMA(decay=0.5, submodule="net")
    fresh.load_state_dict(checkpoint["state_dict"])
    ema2.on_load_checkpoint(_fake_trainer(ema2), fresh, checkpoint)
    ema2.load_state_dict(checkpoint["callbacks"][ema.state_key])
    assert torch.all(fresh.net.weight == 3.0), "resume must train on the raw weights"
    assert torch.all(ema2._shadow["weight"] == 2.0) and ema2.num_updates == 2


def test_bad_submodule_is_named():
    with pytest.raises(ValueError, match=r"callbacks\.ema\.submodule='nope'"):
        EMA(submodule="nope").on_fit_start(_fake_trainer(EMA()), Toy())
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.5)


def test_no_lightning_privates_or_class_name_lookups_in_src():
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for needle in ("_swap_models", "_average_model", "type(cb).__name__", "type(c).__name__", "._trainer"):
            if needle in text and path.name != "ema.py":
                offenders.append(f"{path.relative_to(SRC)}: {needle}")
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------------ a real run
def test_ddsp_run_with_ema_probe_test_and_loader_see_the_average(compose_run, tmp_path):
    from audiolab.callbacks.probe import read_summary
    from audiolab.evaluate import evaluate
    from audiolab.train import train_one
    from audiolab.utils.rng import seeded

    out = tmp_path / "run"
    overrides = ["experiment=ddsp_transformer", "debug=fast", "threads=1", "callbacks.media=null",
                 "callbacks.ema.enabled=true", "callbacks.ema.submodule=net", "callbacks.ema.decay=0.5",
                 "trainer.max_steps=6", "model.optim.optimizer.lr=1e-2"]
    cfg = compose_run(overrides, out)
    result = train_one(cfg)
    last = read_checkpoint(out / "checkpoints" / "last.ckpt")
    state = next(v for k, v in last["callbacks"].items() if k.startswith("EMA"))
    assert state["num_updates"] == 6
    raw = state["raw_weights"]
    trained = load_trained(out / "checkpoints" / "last.ckpt", family="ddsp")
    assert set(raw) == {n for n, _ in trained.module.net.named_parameters()}, "only net's parameters are averaged"
    differs = [k for k, v in raw.items() if not torch.equal(v, last["state_dict"][f"net.{k}"])]
    assert differs, "state_dict holds the raw weights, not the average"
    # the probe ranked the averaged weights: recompute its metric at the last step from the loaded file
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup("fit")
    batch = dm.probe_batch(int(cfg.callbacks.probe.n_examples))
    with seeded(0, torch.device("cpu")), torch.no_grad():
        metrics = trained.module.probe_metrics(batch)
    history = read_summary(out)["history"]
    assert history[-1]["step"] == 6
    assert metrics["spectral"] == pytest.approx(history[-1]["spectral"], rel=1e-5)
    # the test at the end of training and evaluate (which reads the averaged state_dict) agree
    ev = evaluate(result["tested_checkpoint"], tmp_path / "eval", accelerator="cpu")
    assert ev["metrics"]["test/spectral"] == pytest.approx(result["test/spectral"], rel=1e-4)
    # resume trains on the raw weights: the module holds them when training restarts
    seen = {}
    from audiolab.models.ddsp.module import DDSPModule

    def capture(self):
        seen["net"] = {k: v.detach().clone() for k, v in self.net.named_parameters()}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DDSPModule, "on_train_start", capture, raising=False)
        train_one(compose_run([*overrides, "ckpt_path=last", "trainer.max_steps=7", "test=false"], out))
    assert all(torch.equal(seen["net"][k], raw[k]) for k in raw), "resume did not restore the raw weights"
    assert json.loads((out / "probe_summary.json").read_text())["history"][-1]["step"] == 7


def test_gan_codec_ema_averages_the_codec_not_the_discriminator(compose_run, tmp_path):
    """A GAN steps two optimizers per batch (global_step += 2): EMA updates once per batch, over the codec only."""
    from audiolab.train import train_one

    out = tmp_path / "run"
    train_one(compose_run(["experiment=codec_unbounded", "debug=fast", "threads=1", "callbacks.media=null", "test=false",
                           "model.loss.adversarial.enabled=true", "trainer.max_steps=6", "callbacks.ema.enabled=true",
                           "callbacks.ema.submodule=codec", "callbacks.ema.decay=0.5"], out))
    last = read_checkpoint(out / "checkpoints" / "last.ckpt")
    state = next(v for k, v in last["callbacks"].items() if k.startswith("EMA"))
    assert last["global_step"] == 6 and int(last["state_dict"]["generator_steps"]) == 3
    assert state["num_updates"] == 3, "one EMA update per batch, not per optimizer step"
    trained = load_trained(out / "checkpoints" / "last.ckpt", family="codec")
    assert set(state["raw_weights"]) == {n for n, _ in trained.module.codec.named_parameters()}
    assert any(k.startswith("discriminator.") for k in last["state_dict"])
    assert not any("discriminator" in k for k in state["raw_weights"]), "the discriminator must not be averaged"
    assert any(not torch.equal(v, last["state_dict"][f"codec.{k}"]) for k, v in state["raw_weights"].items())
