"""Score one trained extractor on the test sets of several ladder rungs (data at each rung's rate and conditions).

    python -m audiolab.models.tse.ladder --ckpt RUN_OR_CKPT \\
        --rungs tse_tfgridnet,tse_ladder_noise,tse_ladder_reverb,tse_ladder_interferers,tse_hifi48k \\
        [--out experiments/tse_ladder/ladder_<name>.json] [--mixtures 200] [--full] [--split test|val|train]

For every rung the test split is built from the rung's experiment config (``conf/experiment/<rung>.yaml``: same
held-out speakers, seeded recipes), the mixture and enrollment of every row are resampled to the model's rate when
the rung's rate differs (a 16 kHz model on the 48 kHz rung), the estimate is resampled back, and the rows are
scored by :class:`~audiolab.models.tse.metrics.TSEScores` at the rung's rate: SI-SDRi (mean / median / % < 0) on
target-present rows, SDRi, PESQ-WB and STOI with their mixture rows (``--full``), TA suppression and both controls.
``--split train`` scores seeded new mixtures of the training voices instead (the seen / unseen speaker gap); the
result goes under ``rungs[<rung>@train]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torchaudio

__all__ = ["rung_datamodule", "score_rung", "main"]


def rung_datamodule(rung: str, overrides: list[str] | None = None):
    """The :class:`~audiolab.models.tse.data.TSEDataModule` of ``conf/experiment/<rung>.yaml`` (set up)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from audiolab.utils.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={rung}", *(overrides or [])], return_hydra_config=True)
    GlobalHydra.instance().clear()
    from omegaconf import open_dict

    with open_dict(cfg):  # the data node only needs paths; no run folder is made
        cfg.paths.output_dir = str(Path(cfg.paths.log_dir) / "ladder_eval")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("test")
    return dm, cfg


@torch.no_grad()
def score_rung(net: torch.nn.Module, model_rate: int, dm, full: bool, max_mixtures: int | None = None,
               progress: bool = True, split: str = "test") -> dict[str, Any]:
    from audiolab.models.tse.metrics import TSEScores

    rate = int(dm.sample_rate)
    scores = TSEScores(rate, full=full)
    loader = dm.test_dataloader() if split == "test" else dm.fixed_dataloader(split)
    n_done = 0
    t0 = time.perf_counter()
    for batch in loader:
        mix, enr = batch["mixture"], batch["enrollment"]
        if rate != model_rate:
            mix_m = torchaudio.functional.resample(mix, rate, model_rate)
            enr_m = torchaudio.functional.resample(enr, rate, model_rate)
        else:
            mix_m, enr_m = mix, enr
        est = net(mix_m, enr_m)
        if rate != model_rate:
            est = torchaudio.functional.resample(est, model_rate, rate)
            est = est[..., : mix.shape[-1]]
            if est.shape[-1] < mix.shape[-1]:
                est = torch.nn.functional.pad(est, (0, mix.shape[-1] - est.shape[-1]))
        scores.add(batch, est)
        n_done += len(set(batch["mix_id"].tolist()))
        if progress:
            print(f"\r  {n_done} mixtures, {time.perf_counter() - t0:.0f} s", end="", file=sys.stderr, flush=True)
        if max_mixtures and n_done >= max_mixtures:
            break
    if progress:
        print(file=sys.stderr)
    out = scores.summary()
    out["mixtures"] = n_done
    out["rate"] = rate
    out["model_rate"] = model_rate
    out["split"] = split
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    from audiolab.data.cache import atomic_write_json
    from audiolab.models.tse.extract import load_extractor

    p = argparse.ArgumentParser(prog="python -m audiolab.models.tse.ladder", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--rungs", default="tse_tfgridnet,tse_ladder_noise,tse_ladder_reverb,tse_ladder_interferers,tse_hifi48k")
    p.add_argument("--mixtures", type=int, default=None, help="score the first N test mixtures of each rung")
    p.add_argument("--full", action="store_true", help="also SDR, PESQ-WB and STOI (slower)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--split", default="test", choices=["test", "val", "train"],
                   help="speakers to score: held-out test voices (default), validation voices, or training voices")
    p.add_argument("--out", required=True)
    p.add_argument("--override", action="append", default=[], help="extra Hydra override for every rung's data")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    net, model_rate = load_extractor(a.ckpt)
    out = Path(a.out)
    result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    result.setdefault("checkpoint", str(a.ckpt))
    result.setdefault("rungs", {})
    for rung in [r.strip() for r in a.rungs.split(",") if r.strip()]:
        print(f"[ladder] {rung}", file=sys.stderr, flush=True)
        dm, _ = rung_datamodule(rung, a.override)
        key = rung if a.split == "test" else f"{rung}@{a.split}"
        result["rungs"][key] = score_rung(net, model_rate, dm, a.full, a.mixtures, split=a.split)
        atomic_write_json(out, result)  # after every rung: an interrupted run keeps what it measured
        r = result["rungs"][key]
        print(f"[ladder] {key}: SI-SDRi {r['si_sdri']:.2f} dB (median {r['si_sdri_median']:.2f}, "
              f"{r['si_sdri_pct_below_0']:.1f} % < 0), TA suppression {r['ta_suppression_db']:.1f} dB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
