"""``python -m audiolab.models.kick.generate ckpt=RUN keywords=long,sub n=4 steps=50 sampler=ddim cfg_scale=3 seed=0``

Writes ``n`` 2-s kicks (44.1 kHz, 16-bit WAV) to ``out_dir`` with a JSON sidecar each: every setting, the sample's
own seed (sample k uses ``seed + k``; generating that seed alone gives the same kick), the keywords used, the
unknown keywords that were ignored, the model's settings and the time per stage. CPU by default, batched.

Keys: ``ckpt`` (a ``kick_unet`` / ``kick_pipeline`` run folder or .ckpt; required), ``vocoder`` (a ``kick_hifigan``
run; needed when the U-Net checkpoint holds none), ``keywords`` (comma-separated; empty = unconditional),
``n`` (1), ``seed`` (0), ``steps`` (50), ``sampler`` (ddim | dpmsolver++ | ddpm), ``cfg_scale`` (3.0),
``batch_size`` (16), ``out_dir`` (outputs/kicks), ``threads`` (torch threads; default: as torch decides),
``device`` (cpu), ``list_keywords`` (true: print the vocabulary with training counts and exit).
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from audiolab.models.kick.diffusion import SAMPLERS

KEYS: dict[str, type] = {"ckpt": str, "vocoder": str, "keywords": str, "n": int, "seed": int, "steps": int,
                         "sampler": str, "cfg_scale": float, "batch_size": int, "out_dir": str, "threads": int,
                         "device": str, "list_keywords": bool}
DEFAULTS: dict[str, Any] = {"vocoder": None, "keywords": "", "n": 1, "seed": 0, "steps": 50, "sampler": "ddim",
                            "cfg_scale": 3.0, "batch_size": 16, "out_dir": "outputs/kicks", "threads": None,
                            "device": "cpu", "list_keywords": False}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` -> settings (defaults filled); exits with a message naming a bad key or value."""
    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        key = key.lstrip("-").replace("-", "_")
        if not sep or key not in KEYS:
            raise SystemExit(f"kick generate: expected key=value with key in {sorted(KEYS)}, got {item!r}")
        try:
            if KEYS[key] is bool:
                args[key] = value.lower() in ("1", "true", "yes")
            else:
                args[key] = KEYS[key](value) if value.lower() not in ("null", "none") else None
        except ValueError as exc:
            raise SystemExit(f"kick generate: bad value for {key}: {exc}") from exc
    if not args.get("ckpt"):
        raise SystemExit("kick generate: ckpt=<kick_unet or kick_pipeline run folder / .ckpt> is required")
    if args["sampler"] not in SAMPLERS:
        raise SystemExit(f"kick generate: sampler must be one of {SAMPLERS}, got {args['sampler']!r}")
    for key, lo in (("n", 1), ("steps", 1), ("batch_size", 1)):
        if args[key] < lo:
            raise SystemExit(f"kick generate: {key} must be >= {lo}, got {args[key]}")
    return args


def keyword_list(text: str | None) -> list[str]:
    """``"long, Sub,,punchy"`` -> ``["long", "sub", "punchy"]``."""
    return [k.strip().lower() for k in re.split(r"[,;]", text or "") if k.strip()]


def file_stem(keywords: list[str], seed: int) -> str:
    slug = "_".join(re.sub(r"[^a-z0-9]+", "-", k) for k in keywords)[:60] or "unconditional"
    return f"kick_{slug}_s{seed}"


def run(args: dict[str, Any]) -> list[Path]:
    """Generate and write the files; returns the WAV paths."""
    from audiolab.audio.io import save_audio
    from audiolab.data.cache import atomic_write_json
    from audiolab.models.kick.keywords import UnknownKeywordWarning
    from audiolab.models.kick.pipeline import KickPipeline, spawn_seeds

    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    pipe = KickPipeline.from_checkpoint(args["ckpt"], vocoder=args.get("vocoder"),
                                        require_vocoder=not args.get("list_keywords"))
    if args.get("list_keywords"):
        for w, c in zip(pipe.vocabulary.words, pipe.vocabulary.counts):
            print(f"{w}\t{c}")
        return []
    pipe.to(args["device"])
    requested = keyword_list(args["keywords"])
    known, unknown = pipe.vocabulary.split_known(requested)
    if unknown:
        warnings.warn(f"unknown keywords ignored: {unknown} (the model knows {len(pipe.vocabulary)}: "
                      f"{', '.join(pipe.vocabulary.words[:25])}{' ...' if len(pipe.vocabulary) > 25 else ''}; "
                      f"list them with list_keywords=true)", UnknownKeywordWarning, stacklevel=2)
        if requested and not known:
            warnings.warn("no known keyword left: generating unconditionally", UnknownKeywordWarning, stacklevel=2)
    seeds = spawn_seeds(args["seed"], args["n"])
    from tqdm import tqdm

    bar = tqdm(total=len(seeds), desc="kicks", unit="kick", disable=not sys.stderr.isatty())
    gen = pipe.generate([known] * len(seeds), seeds, sampler=args["sampler"], steps=args["steps"],
                        cfg_scale=args["cfg_scale"], batch_size=args["batch_size"],
                        on_progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    out = Path(args["out_dir"])
    paths = []
    settings = {k: args[k] for k in ("ckpt", "vocoder", "n", "seed", "steps", "sampler", "cfg_scale", "batch_size",
                                     "device", "threads")}
    per_kick = {k: v / len(seeds) for k, v in gen.timings.items()}
    for k, s in enumerate(gen.seeds):
        wav = out / f"{file_stem(known, s)}.wav"
        save_audio(wav, gen.audio[k], pipe.mel.sample_rate)
        atomic_write_json(wav.with_suffix(".json"), {
            "file": wav.name, "seed": s, "index": k, "keywords_requested": requested, "keywords_used": known,
            "keywords_unknown": unknown, "settings": settings, "model": pipe.settings(),
            "seconds_per_kick_by_stage": per_kick, "samples": int(gen.audio.shape[1])})
        paths.append(wav)
    print(f"wrote {len(paths)} kicks to {out} ({per_kick['total_s']:.2f} s per kick: U-Net {per_kick['unet_s']:.2f}, "
          f"VAE {per_kick['vae_s']:.3f}, vocoder {per_kick['vocoder_s']:.2f})")
    return paths


def main(argv: list[str] | None = None) -> None:
    run(parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
