"""Kick CPU benchmark: time per generated 2-s kick, split by stage, and peer implementations in the same run.

``python -m audiolab.bench kick [--quick] [--threads 2] [--batch 16] [--ckpt RUN] [--out PATH]``

Stages (median of ``--repeats`` interleaved calls, per kick = per call / kicks in the call):

* U-Net: one denoiser evaluation on ``2 * batch`` latents (classifier-free guidance doubles the batch), ours
  (``model.unet`` defaults, 8 x 11) and the peer ``diffusers.UNet2DModel`` of comparable size on the latent padded
  to 8 x 12 (it cannot run 8 x 11; keyword vector added to the time embedding, ``class_embed_type="identity"``);
* VAE decode of ``batch`` latents;
* vocoder on ``vocoder_batch`` mels of 173 frames, widths 512 / 256 / 128 (weight norm removed), and the peer
  HiFi-GAN V1 reference implementation (``transformers.SpeechT5HifiGan``, 512 wide, same 5-stage layout);
* end to end: ``steps * unet + vae + vocoder`` per kick for DDIM / DPM-Solver++ step counts x widths, and one
  measured :meth:`~audiolab.models.kick.pipeline.KickPipeline.generate` run per sampler that checks the sum.

Weights are random unless ``--ckpt`` names a ``kick_unet`` / ``kick_pipeline`` run (timing does not depend on
them); the result JSON records the machine, threads and load average.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import torch

from audiolab.bench.common import base_parser, environment, result_header, time_interleaved, write_result
from audiolab.models.kick.audio import MelConfig
from audiolab.models.kick.diffusion import NoiseSchedule
from audiolab.models.kick.hifigan import HiFiGANGenerator
from audiolab.models.kick.unet import LatentUNet
from audiolab.models.kick.vae import KickVAE

SCHEMA_VERSION = 1
DEFAULT_OUT = "experiments/kick_diffusion/bench.json"
WIDTHS = (512, 256, 128)
SAMPLER_STEPS = (("ddim", 50), ("ddim", 25), ("dpmsolver++", 20), ("dpmsolver++", 10))


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def diffusers_peer_unet(ours: LatentUNet):
    """``UNet2DModel`` with our level widths (64/128/256), 1 ResBlock per level down and 2 up (diffusers adds one
    on the way up; 10.9 M parameters vs our 9.6 M), attention at the lowest level and in the middle, a 256-d time
    embedding plus an added keyword vector (``class_embed_type="identity"``)."""
    from diffusers import UNet2DModel

    ch = tuple(ours.channels)
    return UNet2DModel(sample_size=(8, 12), in_channels=ours.in_channels, out_channels=ours.in_channels,
                       block_out_channels=ch, layers_per_block=1, down_block_types=("DownBlock2D",) * (len(ch) - 1)
                       + ("AttnDownBlock2D",), up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (len(ch) - 1),
                       class_embed_type="identity", norm_num_groups=32, attention_head_dim=ch[-1] // 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    torch.set_num_threads(int(args.threads))
    device = torch.device("cpu")
    b = int(args.batch)
    reps, warm = (1, 1) if args.quick else (int(args.repeats), 1)
    widths = (128,) if args.quick else WIDTHS
    mel_cfg = MelConfig()
    if args.ckpt:
        from audiolab.models.kick.pipeline import load_kick_module

        module, _ = load_kick_module(args.ckpt, ("KickDiffusionModule",))
        unet, vae = module.unet.eval(), module.vae.eval()
    else:
        unet, vae = LatentUNet().eval(), KickVAE().eval()
    result: dict[str, Any] = {**result_header("kick", SCHEMA_VERSION, device),
                              "environment": environment(device), "load_average": list(os.getloadavg()),
                              "settings": {"threads": int(args.threads), "batch": b, "repeats": reps,
                                           "vocoder_batch": int(args.vocoder_batch), "ckpt": args.ckpt}}
    kw = torch.zeros(2 * b, 16)
    kw[:b, 0] = 1.0
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
    x = torch.randn(2 * b, *vae.latent_shape)
    t = torch.full((2 * b,), 500)
    peer = diffusers_peer_unet(unet).eval()
    x_pad = torch.nn.functional.pad(x, (0, 1))  # 8 x 11 -> 8 x 12
    class_emb = torch.randn(2 * b, peer.config.block_out_channels[0] * 4)
    with torch.inference_mode():
        u = time_interleaved({"ours": lambda: unet(x, t, kw, drop),
                              "diffusers_unet2d": lambda: peer(x_pad, t, class_labels=class_emb)},
                             device, warm, max(reps, 3))
    result["unet"] = {name: {"params": _params(m), "ms_per_call": u[name]["median_ms"],
                             "ms_per_kick_step": u[name]["median_ms"] / b, "latent": shape}
                      for name, m, shape in (("ours", unet, "8x11"), ("diffusers_unet2d", peer, "8x12 (padded)"))}
    z = torch.randn(b, *vae.latent_shape)
    with torch.inference_mode():
        v = time_interleaved({"vae_decode": lambda: vae.decode(z)}, device, warm, max(reps, 3))
    result["vae_decode"] = {"params_decoder": _params(vae.decoder), "ms_per_kick": v["vae_decode"]["median_ms"] / b}
    vb = int(args.vocoder_batch)
    mel = torch.randn(vb, mel_cfg.n_mels, mel_cfg.frames(88200)) - 4.0
    vocs: dict[str, tuple[torch.nn.Module, Any]] = {}
    for w in widths:
        g = HiFiGANGenerator(n_mels=mel_cfg.n_mels, initial_channels=w).eval().remove_weight_norm()
        vocs[f"hifigan_{w}"] = (g, lambda g=g: g(mel))
    if not args.quick:
        try:
            from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

            ref = SpeechT5HifiGan(SpeechT5HifiGanConfig(
                model_in_dim=128, sampling_rate=44100, upsample_initial_channel=512, upsample_rates=[8, 8, 2, 2, 2],
                upsample_kernel_sizes=[16, 16, 4, 4, 4], normalize_before=False)).eval()
            mel_t = mel.transpose(1, 2).contiguous()
            vocs["reference_v1_transformers"] = (ref, lambda: ref(mel_t))
        except ImportError as err:
            result["reference_v1_skipped"] = f"transformers not installed ({err})"
    with torch.inference_mode():
        vt = time_interleaved({k: fn for k, (_, fn) in vocs.items()}, device, warm, reps)
    result["vocoder"] = {k: {"params": _params(m), "ms_per_kick": vt[k]["median_ms"] / vb}
                         for k, (m, _) in vocs.items()}
    rows = []
    for sampler, steps in SAMPLER_STEPS:
        unet_ms = steps * result["unet"]["ours"]["ms_per_kick_step"]
        for w in widths:
            voc_ms = result["vocoder"][f"hifigan_{w}"]["ms_per_kick"]
            total = unet_ms + result["vae_decode"]["ms_per_kick"] + voc_ms
            rows.append({"sampler": sampler, "steps": steps, "vocoder_width": w, "unet_ms": round(unet_ms, 1),
                         "vae_ms": round(result["vae_decode"]["ms_per_kick"], 1), "vocoder_ms": round(voc_ms, 1),
                         "total_s_per_kick": round(total / 1000, 3), "meets_1s": total <= 1000.0})
    result["end_to_end_estimate"] = rows
    result["end_to_end_measured"] = measured_end_to_end(unet, vae, widths[-1], b, args.quick)
    return result


def measured_end_to_end(unet: LatentUNet, vae: KickVAE, width: int, batch: int, quick: bool) -> list[dict]:
    """One real :meth:`KickPipeline.generate` of ``batch`` kicks per sampler (vocoder ``width``), per kick."""
    from audiolab.models.kick.keywords import KeywordVocabulary
    from audiolab.models.kick.pipeline import KickPipeline

    voc = HiFiGANGenerator(initial_channels=width).eval().remove_weight_norm()
    vocab = KeywordVocabulary([f"k{i}" for i in range(16)])
    pipe = KickPipeline(vae, unet, voc, vocab, 1.0, NoiseSchedule().config)
    out = []
    for sampler, steps in ((("dpmsolver++", 2),) if quick else (("ddim", 50), ("dpmsolver++", 20), ("dpmsolver++", 10))):
        n = 2 if quick else batch
        gen = pipe.generate([["k0"]] * n, list(range(n)), sampler=sampler, steps=steps, batch_size=n)
        out.append({"sampler": sampler, "steps": steps, "vocoder_width": width, "kicks": n,
                    **{k: round(v / n, 3) for k, v in gen.timings.items()}})
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"kick CPU bench, {result['device'].get('description', result['device'])}, threads {result['settings']['threads']}, batch "
             f"{result['settings']['batch']} kicks (x2 for CFG), load average {result['load_average'][0]:.2f}", "",
             "| stage | impl | params (M) | ms per kick (per step for U-Nets) |", "|---|---|---|---|"]
    for k, r in result["unet"].items():
        lines.append(f"| U-Net step | {k} ({r['latent']}) | {r['params'] / 1e6:.2f} | {r['ms_per_kick_step']:.1f} |")
    lines.append(f"| VAE decode | ours | {result['vae_decode']['params_decoder'] / 1e6:.2f} | "
                 f"{result['vae_decode']['ms_per_kick']:.1f} |")
    for k, r in result["vocoder"].items():
        lines.append(f"| vocoder | {k} | {r['params'] / 1e6:.2f} | {r['ms_per_kick']:.0f} |")
    lines += ["", "| sampler | steps | vocoder | U-Net ms | VAE ms | vocoder ms | s per kick | <= 1 s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["end_to_end_estimate"]:
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['vocoder_width']} | {r['unet_ms']} | {r['vae_ms']} | "
                     f"{r['vocoder_ms']} | {r['total_s_per_kick']} | {'yes' if r['meets_1s'] else 'no'} |")
    lines += ["", "measured end to end (KickPipeline.generate, seconds per kick):"]
    for r in result["end_to_end_measured"]:
        lines.append(f"- {r['sampler']} {r['steps']} steps, vocoder {r['vocoder_width']}, {r['kicks']} kicks: "
                     f"U-Net {r['unet_s']}, VAE {r['vae_s']}, vocoder {r['vocoder_s']}, total {r['total_s']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = base_parser("kick", __doc__.split("\n\n")[0], DEFAULT_OUT, "one vocoder width, one repeat, 2-kick end to end")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the serving machine has 2 cores)")
    p.add_argument("--batch", type=int, default=16, help="kicks per U-Net/VAE call (CFG doubles the U-Net batch)")
    p.add_argument("--vocoder-batch", type=int, default=4, help="kicks per vocoder call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ckpt", default=None, help="a kick_unet / kick_pipeline run (default: random weights)")
    args = p.parse_args(argv)
    if args.device != "cpu":
        raise SystemExit("bench kick: CPU only (--device cpu): the deployment target is a 2-core CPU")
    result = run(args)
    out = write_result(result, args.out, markdown)
    out.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
