"""CPU seconds (process time, not wall time) per generated kick by stage, 1 torch thread.

The wall-clock bench (``python -m audiolab.bench kick``) on this shared 2-core machine moves by 2x between runs
with the other jobs' load; the process CPU time of a 1-thread run is what the work costs, nearly independent of
the load. A 2-core machine cannot do better than CPU time / 2 per kick (perfect 2-thread scaling, idle machine).

    OMP_NUM_THREADS=1 python experiments/kick_diffusion/cpu_time.py --ckpt RUN [--out experiments/kick_diffusion/cpu_time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from audiolab.models.kick.audio import MelConfig
from audiolab.models.kick.bench import SAMPLER_STEPS, WIDTHS, _params, diffusers_peer_unet
from audiolab.models.kick.hifigan import HiFiGANGenerator
from audiolab.models.kick.pipeline import load_kick_module


def cpu_seconds(fn, repeats: int) -> float:
    """Median process CPU time of ``repeats`` calls (inference mode) after one warm-up call."""
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", default="experiments/kick_diffusion/cpu_time.json")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    b = args.batch
    module, _ = load_kick_module(args.ckpt, ("KickDiffusionModule",))
    unet, vae = module.unet.eval(), module.vae.eval()
    kw = torch.zeros(2 * b, unet.keywords.max_keywords)
    kw[:b, 0] = 1.0
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
    x, t = torch.randn(2 * b, *vae.latent_shape), torch.full((2 * b,), 500)
    peer = diffusers_peer_unet(unet).eval()
    x_pad, emb = torch.nn.functional.pad(x, (0, 1)), torch.randn(2 * b, peer.config.block_out_channels[0] * 4)
    res: dict = {"threads": 1, "batch": b, "repeats": args.repeats, "load_average_start": list(os.getloadavg()),
                 "ckpt": args.ckpt, "cpu_s_per_kick": {}}
    cpu = res["cpu_s_per_kick"]
    cpu["unet_step_ours"] = cpu_seconds(lambda: unet(x, t, kw, drop), args.repeats) / b
    cpu["unet_step_diffusers_unet2d"] = cpu_seconds(lambda: peer(x_pad, t, class_labels=emb), args.repeats) / b
    z = torch.randn(b, *vae.latent_shape)
    cpu["vae_decode"] = cpu_seconds(lambda: vae.decode(z), args.repeats) / b
    cfg = MelConfig()
    vb = 4
    mel = torch.randn(vb, cfg.n_mels, cfg.frames(88200)) - 4.0
    for w in WIDTHS:
        g = HiFiGANGenerator(n_mels=cfg.n_mels, initial_channels=w).eval().remove_weight_norm()
        cpu[f"vocoder_{w}"] = cpu_seconds(lambda g=g: g(mel), args.repeats) / vb
        res[f"params_vocoder_{w}"] = _params(g)
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    ref = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=128, sampling_rate=44100, upsample_initial_channel=512, upsample_rates=[8, 8, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4, 4], normalize_before=False)).eval()
    mel_t = mel.transpose(1, 2).contiguous()
    cpu["vocoder_reference_v1_transformers"] = cpu_seconds(lambda: ref(mel_t), args.repeats) / vb
    rows = []
    for sampler, steps in SAMPLER_STEPS:
        for w in WIDTHS:
            total = steps * cpu["unet_step_ours"] + cpu["vae_decode"] + cpu[f"vocoder_{w}"]
            rows.append({"sampler": sampler, "steps": steps, "vocoder_width": w, "cpu_s": round(total, 3),
                         "ideal_2core_wall_s": round(total / 2, 3)})
    res["end_to_end"] = rows
    res["load_average_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
