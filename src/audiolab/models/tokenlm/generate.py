"""``python -m audiolab.models.tokenlm.generate ckpt=RUN_OR_CKPT [codec=CODEC_CKPT] [tags=melodic,piano]
[seconds=8] [temperature=1.0] [top_k=250] [top_p=0] [cfg_scale=3] [seed=0] [prompt=file.wav] [prompt_seconds=…]
[n=1] [out=generated.wav] [use_cache=true] [device=cpu]`` -> WAV(s) + a JSON sidecar of every setting.

* ``seconds``: length of each output, prompt included (MusicGen's ``generate_continuation`` convention).
* ``cfg_scale``: audiocraft's ``uncond + s·(cond − uncond)``; 1 = conditional only. Dia's ``s`` is ``s + 1`` here.
  A warning is printed (and recorded in the sidecar) when ``s != 1`` and the model was trained with
  ``unconditional_frac=0``.
* ``prompt``: audio encoded with the codec; its codes are kept verbatim and continued (never re-delayed).
* ``codec``: default = the LM's ``model.codec`` if it is a path, else the checkpoint named in the training token
  manifest (``auto``). Its codebook size / count / frame rate must match the LM's tokens (clear error otherwise).
* ``n > 1``: files ``<out stem>_<i>.wav``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from audiolab.audio.io import load_audio, save_audio
from audiolab.data.cache import atomic_write_json

log = logging.getLogger("audiolab")

KEYS = ("ckpt", "codec", "tags", "seconds", "temperature", "top_k", "top_p", "cfg_scale", "seed", "prompt",
        "prompt_seconds", "n", "out", "use_cache", "device")


def load_lm(ckpt: str | Path, device: str = "cpu") -> tuple[Any, Any, dict]:
    """``(TokenLMModule in eval mode, stored config, checkpoint dict)`` of a token-LM run folder or checkpoint."""
    from audiolab.utils.checkpoint import load_trained

    trained = load_trained(ckpt, family="tokenlm", device=device)
    return trained.module, trained.config, {"_path": str(trained.path), "global_step": trained.global_step}


def resolve_codec_path(codec: str | None, cfg: Any) -> str:
    """``codec`` if given; else the LM config's ``model.codec`` path; else the token manifest's checkpoint."""
    if codec:
        return codec
    configured = cfg.model.get("codec")
    if configured and configured != "auto":
        return str(configured)
    manifest = Path(str(cfg.data.get("root", ""))) / "manifest.json"
    if manifest.exists():
        named = json.loads(manifest.read_text()).get("checkpoint")
        if named and Path(named).exists():
            return str(named)
    raise SystemExit("generate: no codec= given and none found in the LM's config (model.codec) or its token manifest "
                     f"({manifest}); pass codec=PATH of the codec checkpoint that made the tokens")


def _bool(v: str) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


def run_generate(opts: dict[str, str]) -> dict[str, Any]:
    from audiolab.models.tokenlm.codec_io import decode_tokens, encode_audio, load_codec_for_tokens
    from audiolab.models.tokenlm.sampling import generate

    if "ckpt" not in opts:
        raise SystemExit("generate: ckpt=RUN_FOLDER_OR_CKPT is required")
    device = opts.get("device", "cpu")
    module, cfg, ck = load_lm(opts["ckpt"], device)
    lm = module.lm
    codec_path = resolve_codec_path(opts.get("codec"), cfg)
    manifest = Path(str(cfg.data.get("root", ""))) / "manifest.json"
    frame_rate = json.loads(manifest.read_text()).get("frame_rate") if manifest.exists() else None
    codec = load_codec_for_tokens(codec_path, lm.n_q, lm.card, frame_rate, device)
    frame_rate = float(codec.frame_rate)
    n = int(opts.get("n", 1))
    seconds = float(opts.get("seconds", 8.0))
    n_frames = max(1, int(round(seconds * frame_rate)))
    tag_names = [t for t in opts.get("tags", "").split(",") if t]
    unknown = [t for t in tag_names if t not in module.tag_ids]
    if unknown:
        raise SystemExit(f"generate: tags {unknown} are not in the model's vocabulary {module.vocabulary}")
    if tag_names and not lm.conditional:
        raise SystemExit("generate: tags= given but the model is unconditional (model.conditioning.max_tags=0)")
    tags = module.encode_tags([tag_names] * n, n) if lm.conditional else None
    prompt = None
    if opts.get("prompt"):
        audio = load_audio(opts["prompt"], int(codec.sample_rate)).reshape(-1)
        if opts.get("prompt_seconds"):
            audio = audio[: int(float(opts["prompt_seconds"]) * codec.sample_rate)]
        prompt = encode_audio(codec, audio, lm.n_q).to(device).repeat(n, 1, 1)
        if prompt.shape[2] >= n_frames:
            raise SystemExit(f"generate: the prompt is {prompt.shape[2] / frame_rate:.2f} s, not shorter than "
                             f"seconds={seconds}: nothing to generate")
    warnings: list[str] = []
    handler = _Collect(warnings)
    log.addHandler(handler)
    try:
        t0 = time.perf_counter()
        out = generate(lm, n_frames, batch=n, tags=tags, prompt=prompt,
                       temperature=float(opts.get("temperature", 1.0)), top_k=int(opts.get("top_k", 250)),
                       top_p=float(opts.get("top_p", 0.0)), cfg_scale=float(opts.get("cfg_scale", 1.0)),
                       use_cache=_bool(opts.get("use_cache", "true")), seed=int(opts.get("seed", 0)),
                       trained_unconditional_frac=module.unconditional_frac, progress=True)
        gen_s = time.perf_counter() - t0
    finally:
        log.removeHandler(handler)
    audio = decode_tokens(codec, out["codes"].clamp(0, lm.card - 1))
    out_path = Path(opts.get("out", "generated.wav"))
    written = []
    for i in range(n):
        path = out_path if n == 1 else out_path.with_name(f"{out_path.stem}_{i}{out_path.suffix}")
        length = int(out["lengths"][i]) * int(codec.hop_length)
        save_audio(path, audio[i, :length].clamp(-1, 1), int(codec.sample_rate))
        written.append(str(path))
    from audiolab.models.codec.infer import model_id

    sidecar = {
        "files": written, "ckpt": ck["_path"], "global_step": ck.get("global_step"), "codec": codec_path,
        "codec_model_id": model_id(codec), "sample_rate": int(codec.sample_rate), "frame_rate": frame_rate,
        "n_q": lm.n_q, "card": lm.card, "pattern": {"kind": lm.pattern.kind, "delays": lm.pattern.delays,
                                                    "eos": lm.pattern.eos},
        "tags": tag_names, "tag_ids": tags[0].tolist() if tags is not None else None,
        "seconds": seconds, "frames": n_frames, "lengths_frames": out["lengths"].tolist(),
        "temperature": float(opts.get("temperature", 1.0)), "top_k": int(opts.get("top_k", 250)),
        "top_p": float(opts.get("top_p", 0.0)), "cfg_scale": float(opts.get("cfg_scale", 1.0)),
        "cfg_convention": "audiocraft: uncond + s*(cond - uncond); Dia's s = this s - 1",
        "trained_unconditional_frac": module.unconditional_frac, "seed": int(opts.get("seed", 0)),
        "use_cache": _bool(opts.get("use_cache", "true")), "prompt": opts.get("prompt"),
        "prompt_frames": int(prompt.shape[2]) if prompt is not None else 0, "n": n, "device": device,
        "generation_seconds": round(gen_s, 3), "frames_per_second": round(out["steps"] * n / gen_s, 2),
        "mean_entropy_nats": out["entropy"], "warnings": warnings,
    }
    atomic_write_json(out_path.with_suffix(".json"), sidecar)
    log.info("wrote %s (+ %s)", ", ".join(written), out_path.with_suffix(".json"))
    return sidecar


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from audiolab.data.cli import parse_key_values

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else 2)
    opts = parse_key_values(argv, {k: str for k in KEYS}, recipe="tokenlm generate", required=("ckpt",))
    with torch.no_grad():  # scoped: a caller's (or a test session's) autograd state is left as it was
        return run_generate(opts)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    main()
