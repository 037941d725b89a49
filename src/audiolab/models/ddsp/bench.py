"""DDSP benchmark: ``python -m audiolab.bench ddsp [--quick] [--device cpu|cuda] [--out PATH]``.

Sections of the JSON written to ``--out`` (default ``experiments/ddsp_backbones/bench.json``):

1. ``train_step``: per decoder backbone (mlp / transformer / gru, each with its ``conf/experiment/ddsp_<b>.yaml``
   model settings, composed through Hydra), one full training step: DDSP forward + multi-scale spectral loss
   (6 scales) + backward + grad-norm clip (the trainer's ``gradient_clip_val``) + Adam step, on random but
   realistic controls (smooth f0 in 200-800 Hz, loudness in -60..-10 dB) against a harmonic-plus-noise
   target. Median ms/step after warmup, examples/s, audio-seconds/s, parameter count, peak memory.
2. ``bf16`` (CUDA only): the same step under ``torch.autocast("cuda", torch.bfloat16)`` vs fp32 for the
   transformer and gru at the paper configuration (batch 32 x 4 s), with the speedup.
3. ``synth_render``: ``HarmonicSynth`` (60 harmonics) + ``FilteredNoise`` (65 bands), forward only under
   ``torch.inference_mode()``, B=1: real-time factor (audio seconds / wall seconds) for 4 s and 60 s.
4. ``spectral_loss_vs_auraloss``: our ``MultiScaleSpectralLoss`` vs ``factor x`` auraloss
   ``MultiResolutionSTFTLoss`` (:func:`audiolab.losses.spectral.auraloss_equivalent`) on the same random
   ``[B, T]`` inputs: value difference (relative difference must be < 1e-5, else the command exits 1 after
   writing the JSON; the absolute difference is reported too),
   gradient difference, and forward+backward time of each, measured round-robin in the same run.

A markdown summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from audiolab.bench import common
from audiolab.dsp import FilteredNoise, HarmonicSynth
from audiolab.losses.spectral import MultiScaleSpectralLoss, auraloss_equivalent

SCHEMA_VERSION = 1
DEFAULT_OUT = "experiments/ddsp_backbones/bench.json"
BACKBONES = ("mlp", "transformer", "gru")  # ascending expected memory: the CPU max-RSS is monotonic
BF16_BACKBONES = ("transformer", "gru")
SECTIONS = ("train_step", "bf16", "synth_render", "spectral_loss_vs_auraloss")
TOLERANCE = 1e-5
PAPER_BATCH, PAPER_SECONDS = 32, 4.0
F0_RANGE_HZ = (200.0, 800.0)
LOUDNESS_RANGE_DB = (-60.0, -10.0)
SYNTH_HARMONICS, SYNTH_NOISE_BANDS = 60, 65


@dataclass
class Settings(common.BenchSettings):
    threads: int | None = None
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    # train_step
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))
    batch_size: int = 8
    example_seconds: float = 2.0
    warmup: int = 2
    repeats: int = 5
    # bf16 (cuda; or forced on CPU with --force-bf16, autocast(cpu, bf16), for testing the code path)
    force_bf16: bool = False
    bf16_batch_size: int = PAPER_BATCH
    bf16_example_seconds: float = PAPER_SECONDS
    # synth_render
    synth_seconds: list[float] = field(default_factory=lambda: [4.0, 60.0])
    synth_warmup: int = 1
    synth_repeats: int = 3
    # spectral_loss_vs_auraloss
    loss_batch_size: int = 8
    loss_samples: int = 32000
    loss_warmup: int = 2
    loss_repeats: int = 10


def default_settings(device: str, quick: bool) -> Settings:
    """CPU: B=8 x 2 s; quick: B=2 x 0.5 s, minimal repeats; CUDA: B=32 x 4 s (the paper configuration)."""
    is_cuda = torch.device(device).type == "cuda"
    if quick:
        return Settings(
            device=device, quick=True, batch_size=2, example_seconds=0.5, warmup=1, repeats=2,
            bf16_batch_size=2, bf16_example_seconds=0.5,
            synth_seconds=[4.0, 60.0], synth_warmup=1, synth_repeats=1,
            loss_batch_size=2, loss_samples=16000, loss_warmup=1, loss_repeats=3,
        )  # fmt: skip
    if is_cuda:
        return Settings(
            device=device, batch_size=PAPER_BATCH, example_seconds=PAPER_SECONDS, warmup=3, repeats=20,
            synth_warmup=2, synth_repeats=10, loss_warmup=3, loss_repeats=30,
        )  # fmt: skip
    return Settings(device=device)


# --------------------------------------------------------------------------------------------- configs
def experiment_model_configs(backbones: list[str]) -> dict[str, dict]:
    """``conf/experiment/ddsp_<backbone>.yaml`` composed through Hydra -> the plain model settings used."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from audiolab.utils.config import CONF_DIR

    out: dict[str, dict] = {}
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for b in backbones:
            cfg = compose("train", overrides=[f"experiment=ddsp_{b}"])
            m = cfg.model
            out[b] = {
                "experiment": f"ddsp_{b}",
                "sample_rate": int(m.sample_rate),
                "frame_rate": int(m.frame_rate),
                "net": OmegaConf.to_container(m.net, resolve=True),
                "decoder": OmegaConf.to_container(m.decoder, resolve=True),
                "spectral_loss": OmegaConf.to_container(m.loss.spectral, resolve=True),
                "lr": float(m.optim.optimizer.lr),
                "grad_clip_norm": float(cfg.trainer.get("gradient_clip_val") or 0.0),
            }
            if out[b]["decoder"]["backbone"] != b:
                raise RuntimeError(f"experiment ddsp_{b} has backbone {out[b]['decoder']['backbone']!r}")
    GlobalHydra.instance().clear()
    return out


# --------------------------------------------------------------------------------------------- inputs
def smooth_random(batch: int, frames: int, lo: float, hi: float, gen: torch.Generator, knots_every: int = 50,
                  log: bool = False) -> Tensor:
    """[B, F] piecewise-linear random curve through knots every ``knots_every`` frames, values in [lo, hi]."""
    n_knots = max(2, frames // knots_every + 2)
    lo_, hi_ = (math.log(lo), math.log(hi)) if log else (lo, hi)
    knots = lo_ + (hi_ - lo_) * torch.rand(batch, 1, n_knots, generator=gen)
    curve = F.interpolate(knots, size=frames, mode="linear", align_corners=True)[:, 0]
    return curve.exp() if log else curve


def make_controls(batch: int, frames: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """f0 [B, F] Hz (smooth, 200-800, log-uniform knots), loudness [B, F] dB (smooth, -60..-10)."""
    f0 = smooth_random(batch, frames, *F0_RANGE_HZ, gen, log=True)
    ld = smooth_random(batch, frames, *LOUDNESS_RANGE_DB, gen)
    return f0, ld


@torch.no_grad()
def render_target(f0: Tensor, loudness_db: Tensor, n_samples: int, sample_rate: int) -> Tensor:
    """A harmonic (1/k spectrum) + faint noise target following the controls, [B, T]."""
    b, f = f0.shape
    k = torch.arange(1, SYNTH_HARMONICS + 1, dtype=torch.float32, device=f0.device)
    dist = (1.0 / k).expand(b, f, -1)
    amp = 10.0 ** (loudness_db / 20.0)
    harm = HarmonicSynth(sample_rate=sample_rate).to(f0.device)(f0, amp, dist, n_samples)
    mags = torch.full((b, f, SYNTH_NOISE_BANDS), 1e-3, device=f0.device) * amp[..., None]
    noise = FilteredNoise(n_bands=SYNTH_NOISE_BANDS).to(f0.device)(mags, n_samples)
    return harm + noise


def _frames(seconds: float, frame_rate: int) -> int:
    n = round(seconds * frame_rate)
    if n < 1:
        raise SystemExit(f"{seconds} s is less than one frame at {frame_rate} Hz")
    return n


# --------------------------------------------------------------------------------------------- 1/2 train step
def _train_step_case(cfg: dict, batch: int, seconds: float, device: torch.device, warmup: int, repeats: int,
                     seed: int, autocast_dtype: torch.dtype | None = None) -> dict:
    from audiolab.models.ddsp.synth import build_ddsp

    sr, fr = cfg["sample_rate"], cfg["frame_rate"]
    frames = _frames(seconds, fr)
    hop = sr // fr
    n_samples = frames * hop
    loss_fn = MultiScaleSpectralLoss(**cfg["spectral_loss"])
    if n_samples < max(loss_fn.fft_sizes):
        raise SystemExit(f"example of {n_samples} samples is shorter than the largest FFT {max(loss_fn.fft_sizes)}")

    gen = torch.Generator().manual_seed(seed)
    f0, ld = make_controls(batch, frames, gen)
    f0, ld = f0.to(device), ld.to(device)
    torch.manual_seed(seed)
    target = render_target(f0, ld, n_samples, sr)
    model = build_ddsp(sr, fr, cfg["net"], cfg["decoder"]).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    clip = cfg["grad_clip_norm"]

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=autocast_dtype)

    def step() -> Tensor:
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(f0, ld, n_samples)
            loss = loss_fn(out["audio"], target)["loss"]
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return loss

    with common.PeakMemory(device) as mem:
        first_loss = float(step().detach())  # first step (counted in the warmup), checks the step is sane
        if not math.isfinite(first_loss):
            raise RuntimeError(f"non-finite loss {first_loss} in the first training step")
        timing = common.time_fn(step, device, warmup=max(0, warmup - 1), repeats=repeats)
    timing["warmup"] = max(1, warmup)
    med_s = timing["median_ms"] / 1e3
    audio_s = batch * n_samples / sr
    result = {
        "experiment": cfg["experiment"],
        "batch_size": batch,
        "example_seconds": n_samples / sr,
        "n_frames": frames,
        "n_samples": n_samples,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in params),
        "ms_per_step": timing["median_ms"],
        "examples_per_s": batch / med_s,
        "audio_seconds_per_s": audio_s / med_s,
        "first_loss": first_loss,
        "peak_memory": mem.result,
        "timing": timing,
        "reverb": bool(cfg["net"].get("reverb", False)),
        "decoder": cfg["decoder"],
    }
    return result  # model, optimizer and tensors are released on return; callers then call free_memory()


def bench_train_step(s: Settings, device: torch.device, configs: dict[str, dict]) -> dict:
    first = configs[s.backbones[0]]
    out = {
        "batch_size": s.batch_size,
        "example_seconds": s.example_seconds,
        "warmup": s.warmup,
        "repeats": s.repeats,
        "step": "zero_grad + DDSP forward + MultiScaleSpectralLoss + backward + clip_grad_norm_ + Adam.step",
        "spectral_loss": first["spectral_loss"],
        "inputs": {"f0_hz": list(F0_RANGE_HZ), "loudness_db": list(LOUDNESS_RANGE_DB),
                   "target": "HarmonicSynth 1/k spectrum + FilteredNoise at -60 dB re. amplitude"},
        "backbones": {},
    }
    for b in s.backbones:
        common.log("ddsp", f"train_step {b}: B={s.batch_size} x {s.example_seconds} s, warmup {s.warmup}, repeats {s.repeats}")
        out["backbones"][b] = _train_step_case(configs[b], s.batch_size, s.example_seconds, device, s.warmup,
                                               s.repeats, s.seed)
        common.free_memory(device)
    return out


def bench_bf16(s: Settings, device: torch.device, configs: dict[str, dict]) -> dict:
    if device.type != "cuda" and not s.force_bf16:
        return {"skipped": f"bf16 autocast is only benchmarked with --device cuda (device is {device.type})"}
    out = {
        "autocast": f"torch.autocast({device.type!r}, dtype=torch.bfloat16) around forward + loss",
        "batch_size": s.bf16_batch_size,
        "example_seconds": s.bf16_example_seconds,
        "warmup": s.warmup,
        "repeats": s.repeats,
        "backbones": {},
    }
    for b in BF16_BACKBONES:
        if b not in configs:
            continue
        row: dict = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            common.log("ddsp", f"bf16 section {b} {name}: B={s.bf16_batch_size} x {s.bf16_example_seconds} s")
            try:
                r = _train_step_case(configs[b], s.bf16_batch_size, s.bf16_example_seconds, device, s.warmup,
                                     s.repeats, s.seed, autocast_dtype=dtype)
                row[name] = {k: r[k] for k in ("ms_per_step", "examples_per_s", "audio_seconds_per_s",
                                               "first_loss", "peak_memory", "timing")}
            except (RuntimeError, NotImplementedError) as e:  # e.g. an op without a bf16 kernel
                row[name] = {"error": f"{type(e).__name__}: {e}"}
            common.free_memory(device)
        if "ms_per_step" in row.get("fp32", {}) and "ms_per_step" in row.get("bf16", {}):
            row["speedup_vs_fp32"] = row["fp32"]["ms_per_step"] / row["bf16"]["ms_per_step"]
        out["backbones"][b] = row
    return out


# --------------------------------------------------------------------------------------------- 3 synth render
def bench_synth_render(s: Settings, device: torch.device, sample_rate: int, frame_rate: int) -> dict:
    hop = sample_rate // frame_rate
    harm = HarmonicSynth(sample_rate=sample_rate).to(device)
    noise = FilteredNoise(n_bands=SYNTH_NOISE_BANDS).to(device)
    out = {
        "n_harmonics": SYNTH_HARMONICS,
        "n_noise_bands": SYNTH_NOISE_BANDS,
        "batch_size": 1,
        "sample_rate": sample_rate,
        "frame_rate": frame_rate,
        "mode": "forward only, torch.inference_mode()",
        "warmup": s.synth_warmup,
        "repeats": s.synth_repeats,
        "renders": {},
    }
    for seconds in s.synth_seconds:
        frames = _frames(seconds, frame_rate)
        n = frames * hop
        gen = torch.Generator().manual_seed(s.seed)
        f0, ld = make_controls(1, frames, gen)
        amp = 10.0 ** (ld / 20.0)
        dist = torch.rand(1, frames, SYNTH_HARMONICS, generator=gen)
        mags = 1e-3 * torch.rand(1, frames, SYNTH_NOISE_BANDS, generator=gen)
        f0, amp, dist, mags = (t.to(device) for t in (f0, amp, dist, mags))

        def render(f0=f0, amp=amp, dist=dist, mags=mags, n=n) -> Tensor:
            return harm(f0, amp, dist, n) + noise(mags, n)

        common.log("ddsp", f"synth_render {seconds} s: warmup {s.synth_warmup}, repeats {s.synth_repeats}")
        with torch.inference_mode(), common.PeakMemory(device) as mem:
            timing = common.time_fn(render, device, warmup=s.synth_warmup, repeats=s.synth_repeats)
        audio_s = n / sample_rate
        out["renders"][f"{audio_s:g}s"] = {
            "audio_seconds": audio_s,
            "n_samples": n,
            "ms": timing["median_ms"],
            "real_time_factor": audio_s / (timing["median_ms"] / 1e3),
            "peak_memory": mem.result,
            "timing": timing,
        }
        del f0, amp, dist, mags, render
        common.free_memory(device)
    return out


# --------------------------------------------------------------------------------------------- 4 loss vs auraloss
def bench_spectral_loss(s: Settings, device: torch.device) -> dict:
    ours = MultiScaleSpectralLoss()  # DDSP defaults: 6 scales 2048..64, overlap 0.75, mag + logmag, eps 1e-5
    aura, factor = auraloss_equivalent(ours)
    aura = aura.to(device)
    if s.loss_samples < max(ours.fft_sizes):
        raise SystemExit(f"--loss-samples {s.loss_samples} is shorter than the largest FFT {max(ours.fft_sizes)}")
    gen = torch.Generator().manual_seed(s.seed)
    shape = (s.loss_batch_size, s.loss_samples)
    target = (0.1 * torch.randn(shape, generator=gen)).to(device)
    pred = (0.1 * torch.randn(shape, generator=gen)).to(device).requires_grad_(True)

    def ours_loss() -> Tensor:
        return ours(pred, target)["loss"]

    def aura_loss() -> Tensor:
        return factor * aura(pred[:, None], target[:, None])

    # values and gradients (one forward+backward each, same inputs)
    values, grads = {}, {}
    for name, fn in (("ours", ours_loss), ("auraloss", aura_loss)):
        pred.grad = None
        v = fn()
        v.backward()
        values[name] = float(v.detach())
        grads[name] = pred.grad.detach().clone()
    abs_diff = abs(values["ours"] - values["auraloss"])
    rel_diff = abs_diff / max(abs(values["auraloss"]), 1e-30)
    g_abs = float((grads["ours"] - grads["auraloss"]).abs().max())
    g_rel = float((grads["ours"] - grads["auraloss"]).norm() / grads["auraloss"].norm().clamp_min(1e-30))

    def fwd_bwd(fn):
        def run() -> None:
            pred.grad = None
            fn().backward()

        return run

    common.log("ddsp", f"spectral_loss_vs_auraloss: B={shape[0]}, T={shape[1]}, warmup {s.loss_warmup}, repeats {s.loss_repeats}")
    t = common.time_interleaved({"ours": fwd_bwd(ours_loss), "auraloss": fwd_bwd(aura_loss)}, device,
                         warmup=s.loss_warmup, repeats=s.loss_repeats)
    version = common.package_version("auraloss") or "unknown"
    return {
        "peer": f"auraloss.freq.MultiResolutionSTFTLoss {version}",
        "batch_size": shape[0],
        "n_samples": shape[1],
        "inputs": "pred, target ~ 0.1 * N(0, 1), independent",
        "fft_sizes": list(ours.fft_sizes),
        "hop_sizes": list(ours.hop_sizes),
        "factor": factor,
        "ours_value": values["ours"],
        "auraloss_value_times_factor": values["auraloss"],
        "abs_diff": abs_diff,
        "rel_diff": rel_diff,
        "grad_max_abs_diff": g_abs,
        "grad_rel_l2_diff": g_rel,
        "tolerance": TOLERANCE,
        # gate on the relative difference: the loss is O(1-10), where one fp32 ulp is already ~1e-6
        "values_match": bool(rel_diff < TOLERANCE),
        "abs_diff_below_tolerance": bool(abs_diff < TOLERANCE),
        "ours_fwd_bwd_ms": t["ours"]["median_ms"],
        "auraloss_fwd_bwd_ms": t["auraloss"]["median_ms"],
        "time_ratio_ours_over_auraloss": t["ours"]["median_ms"] / t["auraloss"]["median_ms"],
        "timing": t,
        "timing_method": "round-robin (ours, auraloss, ours, ...) forward + backward, same inputs, same run",
    }


# --------------------------------------------------------------------------------------------- report
def markdown(result: dict) -> str:
    lines = [f"## DDSP benchmark — {result['device']['description']} (torch {result['environment']['torch']}, "
             f"{result['environment']['threads']} threads, {result['date']})", ""]
    ts = result["train_step"]
    if "backbones" in ts:
        lines += [f"### train_step (B={ts['batch_size']} x {ts['example_seconds']} s)", "",
                  "| backbone | reverb | params | ms/step | examples/s | audio s/s | peak MiB |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for b, r in ts["backbones"].items():
            lines.append(f"| {b} | {'yes' if r['reverb'] else 'no'} | {r['parameters']:,} | {r['ms_per_step']:.1f} | "
                         f"{r['examples_per_s']:.2f} | {r['audio_seconds_per_s']:.2f} | "
                         f"{r['peak_memory']['peak_mib']:.0f} ({r['peak_memory']['kind']}) |")
        lines.append("")
    bf = result["bf16"]
    if "backbones" in bf:
        lines += [f"### bf16 autocast (B={bf['batch_size']} x {bf['example_seconds']} s)", "",
                  "| backbone | fp32 ms/step | bf16 ms/step | speedup |", "|---|---:|---:|---:|"]
        for b, r in bf["backbones"].items():
            f32 = r["fp32"].get("ms_per_step")
            b16 = r["bf16"].get("ms_per_step")
            sp = r.get("speedup_vs_fp32")
            lines.append(f"| {b} | {f'{f32:.1f}' if f32 else r['fp32'].get('error')} | "
                         f"{f'{b16:.1f}' if b16 else r['bf16'].get('error')} | {f'{sp:.2f}x' if sp else '-'} |")
        lines.append("")
    else:
        lines += [f"### bf16: {bf.get('skipped')}", ""]
    sr = result["synth_render"]
    if "renders" in sr:
        lines += [f"### synth_render (HarmonicSynth {sr['n_harmonics']} + FilteredNoise {sr['n_noise_bands']}, "
                  "B=1, inference)", "", "| audio | ms | real-time factor |", "|---|---:|---:|"]
        for k, r in sr["renders"].items():
            lines.append(f"| {k} | {r['ms']:.1f} | {r['real_time_factor']:.1f}x |")
        lines.append("")
    sl = result["spectral_loss_vs_auraloss"]
    if "ours_value" in sl:
        lines += [f"### spectral loss vs {sl['peer']} (B={sl['batch_size']}, T={sl['n_samples']})", "",
                  "| ours | factor x auraloss | abs diff | rel diff | ours fwd+bwd ms | auraloss fwd+bwd ms | ratio |",
                  "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {sl['ours_value']:.6f} | {sl['auraloss_value_times_factor']:.6f} | {sl['abs_diff']:.2e} | "
                  f"{sl['rel_diff']:.2e} | {sl['ours_fwd_bwd_ms']:.1f} | {sl['auraloss_fwd_bwd_ms']:.1f} | "
                  f"{sl['time_ratio_ours_over_auraloss']:.2f} |", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- entry points
def run(s: Settings) -> dict:
    """Run the selected sections; returns the JSON-able result (sections not run say ``skipped``)."""
    if s.threads:
        torch.set_num_threads(int(s.threads))
    device = common.resolve_device(s.device)
    bad = [b for b in s.backbones if b not in BACKBONES]
    if bad:
        raise SystemExit(f"unknown backbone(s) {bad}; choose from {list(BACKBONES)}")
    bad = [x for x in s.sections if x not in SECTIONS]
    if bad:
        raise SystemExit(f"unknown section(s) {bad}; choose from {list(SECTIONS)}")
    torch.manual_seed(s.seed)
    needed = sorted(set(s.backbones) | (set(BF16_BACKBONES) if "bf16" in s.sections else set()),
                    key=BACKBONES.index)
    configs = experiment_model_configs(needed)
    any_cfg = next(iter(configs.values()))
    result: dict = {
        **common.result_header("ddsp", SCHEMA_VERSION, device),
        "environment": {**common.environment(device), "auraloss": common.package_version("auraloss")},
        "settings": {**asdict(s), "model_configs": configs},
    }
    for name in SECTIONS:
        result[name] = {"skipped": "not selected (--sections)"}
    if "train_step" in s.sections:
        result["train_step"] = bench_train_step(s, device, configs)
    if "bf16" in s.sections:
        result["bf16"] = bench_bf16(s, device, configs)
    if "synth_render" in s.sections:
        result["synth_render"] = bench_synth_render(s, device, any_cfg["sample_rate"], any_cfg["frame_rate"])
    if "spectral_loss_vs_auraloss" in s.sections:
        result["spectral_loss_vs_auraloss"] = bench_spectral_loss(s, device)
    return result


def parse_args(argv: list[str] | None) -> tuple[Settings, Path]:
    p = common.base_parser("ddsp", __doc__.split("\n\n")[0], DEFAULT_OUT, "tiny sizes and repetition counts (smoke run)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's default)")
    p.add_argument("--sections", type=common.csv_list, default=None, help=f"comma list of {','.join(SECTIONS)} (default all)")
    p.add_argument("--backbones", type=common.csv_list, default=None, help=f"comma list of {','.join(BACKBONES)}")
    p.add_argument("--batch-size", type=int, default=None, help="train_step batch size")
    p.add_argument("--seconds", type=float, default=None, help="train_step example length in seconds")
    p.add_argument("--warmup", type=int, default=None, help="train_step / bf16 warmup steps")
    p.add_argument("--repeats", type=int, default=None, help="train_step / bf16 timed steps")
    p.add_argument("--force-bf16", action="store_true", help="run the bf16 section on CPU too (autocast cpu)")
    p.add_argument("--bf16-batch-size", type=int, default=None)
    p.add_argument("--bf16-seconds", type=float, default=None)
    p.add_argument("--synth-seconds", type=lambda x: common.csv_list(x, float), default=None,
                   help="comma list of render lengths in seconds (default 4,60)")
    p.add_argument("--synth-warmup", type=int, default=None)
    p.add_argument("--synth-repeats", type=int, default=None)
    p.add_argument("--loss-batch-size", type=int, default=None)
    p.add_argument("--loss-samples", type=int, default=None)
    p.add_argument("--loss-warmup", type=int, default=None)
    p.add_argument("--loss-repeats", type=int, default=None)
    a = p.parse_args(argv)
    s = default_settings(a.device, a.quick)
    s.threads, s.force_bf16 = a.threads, a.force_bf16
    overrides = {
        "seed": a.seed, "sections": a.sections, "backbones": a.backbones, "batch_size": a.batch_size,
        "example_seconds": a.seconds, "warmup": a.warmup, "repeats": a.repeats,
        "bf16_batch_size": a.bf16_batch_size, "bf16_example_seconds": a.bf16_seconds,
        "synth_seconds": a.synth_seconds, "synth_warmup": a.synth_warmup, "synth_repeats": a.synth_repeats,
        "loss_batch_size": a.loss_batch_size, "loss_samples": a.loss_samples,
        "loss_warmup": a.loss_warmup, "loss_repeats": a.loss_repeats,
    }  # fmt: skip
    return common.apply_overrides(s, overrides), Path(a.out)


def main(argv: list[str] | None = None) -> int:
    s, out = parse_args(argv)
    result = run(s)
    common.write_result(result, out, markdown)
    sl = result["spectral_loss_vs_auraloss"]
    if "values_match" in sl and not sl["values_match"]:
        print(f"FAIL: spectral loss differs from auraloss by {sl['abs_diff']:.3e} (rel {sl['rel_diff']:.3e}) "
              f">= {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
