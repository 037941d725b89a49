"""``python -m audiolab.bench tokenlm [--quick] [--device cpu|cuda] [--out PATH] [--frames N] [--d-model D] ...``

Generation speed of the token LM (frames per second of one item, greedy) — full recomputation (no cache), KV
cache, KV cache with batched classifier-free guidance (2B rows) — against the ``transformers`` MusicGen decoder
(``MusicgenForCausalLM``, random weights, no download) at the same size (d_model, layers, heads, FFN, K, card) and
the same number of frames, timed round-robin in the same run. Ratios are ours / peer time (< 1 = ours faster).
Also a training-step time at the configured crop.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import torch

from audiolab.bench.common import (
    BenchSettings,
    apply_overrides,
    base_parser,
    environment,
    package_version,
    resolve_device,
    result_header,
    time_fn,
    time_interleaved,
    write_result,
)

DEFAULT_OUT = "experiments/tokenlm_delay/bench.json"
SCHEMA_VERSION = 1


@dataclass
class Settings(BenchSettings):
    threads: int = 1
    n_q: int = 4
    card: int = 1024
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    ff_multiplier: int = 4
    frames: int = 250
    batch: int = 1
    cfg_scale: float = 3.0
    warmup: int = 1
    repeats: int = 3
    train_batch: int = 8
    train_frames: int = 250
    peer: bool = True


def _ours(s: Settings, device: torch.device):
    from audiolab.models.tokenlm.model import TokenLM

    torch.manual_seed(s.seed)
    return TokenLM(s.n_q, s.card, d_model=s.d_model, layers=s.layers, heads=s.heads, ff_multiplier=s.ff_multiplier,
                   max_len=max(s.frames, s.train_frames) + s.n_q + 8, n_tags=4, max_tags=1).to(device).eval()


def _peer(s: Settings, device: torch.device):
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    torch.manual_seed(s.seed)
    cfg = MusicgenDecoderConfig(vocab_size=s.card, num_codebooks=s.n_q, hidden_size=s.d_model,
                                num_hidden_layers=s.layers, num_attention_heads=s.heads,
                                ffn_dim=s.ff_multiplier * s.d_model, max_position_embeddings=s.frames + s.n_q + 8,
                                pad_token_id=s.card, bos_token_id=s.card, decoder_start_token_id=s.card,
                                dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    model = MusicgenForCausalLM(cfg).to(device).eval()
    model.generation_config.pad_token_id = s.card
    model.generation_config.decoder_start_token_id = s.card
    model.generation_config.bos_token_id = s.card
    model.generation_config.eos_token_id = None
    return model


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def run(s: Settings) -> dict:
    from audiolab.models.tokenlm.sampling import generate

    device = resolve_device(s.device)
    torch.set_num_threads(s.threads)
    ours = _ours(s, device)
    tags = torch.ones(s.batch, 1, dtype=torch.long, device=device)

    def ours_fn(cache: bool, cfg: float):
        return lambda: generate(ours, s.frames, batch=s.batch, tags=tags, temperature=0.0, cfg_scale=cfg,
                                use_cache=cache, seed=0)

    fns = {"ours_kv_cache": ours_fn(True, 1.0), "ours_kv_cache_cfg": ours_fn(True, s.cfg_scale),
           "ours_no_cache": ours_fn(False, 1.0)}
    result: dict = {**result_header("tokenlm", SCHEMA_VERSION, device), "environment": environment(device),
                    "settings": asdict(s), "parameters": {"ours": _params(ours)}}
    peer = None
    if s.peer:
        try:
            peer = _peer(s, device)
        except ImportError as err:
            result["peer_skipped"] = f"transformers not installed ({err}); pip install -e '.[dev]'"
    if peer is not None:
        result["parameters"]["transformers_musicgen"] = _params(peer)
        result["peer"] = f"transformers {package_version('transformers')} MusicgenForCausalLM (random init)"
        start = torch.full((s.batch * s.n_q, 1), s.card, dtype=torch.long, device=device)
        # max_length counts the start step: frames + K - 1 delayed steps + 1 = the same frames as ours
        max_length = s.frames + s.n_q

        def peer_fn(cfg: float | None, cache: bool = True):
            import copy

            gc = copy.deepcopy(peer.generation_config)
            gc.max_length, gc.do_sample, gc.use_cache, gc.num_return_sequences = max_length, False, cache, 1
            gc.guidance_scale = cfg  # > 1: the 2B cond/uncond batch of ClassifierFreeGuidanceLogitsProcessor
            return lambda: peer.generate(input_ids=start, generation_config=gc)

        fns.update({"transformers_kv_cache": peer_fn(None), "transformers_kv_cache_cfg": peer_fn(s.cfg_scale),
                    "transformers_no_cache": peer_fn(None, cache=False)})
        with torch.no_grad():
            out = fns["transformers_kv_cache"]()
        result["peer_output_shape"] = list(out.shape)
    with torch.no_grad():
        times = time_interleaved(fns, device, s.warmup, s.repeats)
    rows = {}
    for name, t in times.items():
        frames_per_s = s.frames * s.batch / (t["median_ms"] / 1e3)
        rows[name] = {"median_ms": t["median_ms"], "frames_per_s": frames_per_s, "times_ms": t["times_ms"]}
    for mode in ("kv_cache", "kv_cache_cfg", "no_cache"):
        if f"transformers_{mode}" in rows:
            rows[f"ours_{mode}"]["time_ratio_vs_transformers"] = (rows[f"ours_{mode}"]["median_ms"]
                                                                  / rows[f"transformers_{mode}"]["median_ms"])
    rows["ours_kv_cache"]["speedup_vs_no_cache"] = rows["ours_no_cache"]["median_ms"] / rows["ours_kv_cache"]["median_ms"]
    result["generation"] = rows
    result["train_step"] = _train_step(s, ours, device)
    return result


def _train_step(s: Settings, lm, device: torch.device) -> dict:
    """Forward + backward + AdamW step at ``train_batch`` x ``train_frames`` (the CPU study's crop)."""
    lm = lm.train()
    codes = torch.randint(0, s.card, (s.train_batch, s.n_q, s.train_frames), device=device)
    seq = lm.pattern.build(codes)
    target = lm.pattern.target_ids(seq[..., 1:])
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-4)

    def step():
        logits = lm(seq[..., :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                 ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = time_fn(step, device, s.warmup, s.repeats)
    lm.eval()
    return {"median_ms": t["median_ms"], "batch": s.train_batch, "frames": s.train_frames,
            "frames_per_s": s.train_batch * s.train_frames / (t["median_ms"] / 1e3)}


def markdown(r: dict) -> str:
    lines = [f"tokenlm generation, {r['device']['description']}, threads {r['settings']['threads']}, "
             f"{r['settings']['frames']} frames x batch {r['settings']['batch']}",
             "| mode | median ms | frames/s | ours / transformers time |", "|---|---|---|---|"]
    for name, row in r["generation"].items():
        ratio = row.get("time_ratio_vs_transformers")
        lines.append(f"| {name} | {row['median_ms']:.1f} | {row['frames_per_s']:.1f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} |")
    ts = r["train_step"]
    lines.append(f"train step {ts['batch']} x {ts['frames']} frames: {ts['median_ms']:.0f} ms")
    return "\n".join(lines)


INT_OPTIONS = ("threads", "frames", "batch", "d_model", "layers", "heads", "n_q", "card", "warmup", "repeats",
               "train_batch", "train_frames")


def parse_args(argv: list[str] | None) -> tuple[Settings, str]:
    p = base_parser("tokenlm", __doc__.split("\n\n")[0], DEFAULT_OUT, "tiny sizes, 1 repeat (smoke run)")
    for name in INT_OPTIONS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    p.add_argument("--cfg-scale", type=float, default=None)
    p.add_argument("--no-peer", action="store_true", help="skip the transformers MusicGen comparison")
    a = p.parse_args(argv)
    s = Settings(device=a.device, quick=a.quick)
    if a.quick:
        s = Settings(device=a.device, quick=True, d_model=32, layers=1, heads=2, card=64, frames=16, warmup=0,
                     repeats=1, train_batch=2, train_frames=16)
    apply_overrides(s, {name: getattr(a, name) for name in (*INT_OPTIONS, "seed", "cfg_scale")})
    s.peer = not a.no_peer
    return s, a.out


def main(argv: list[str] | None = None) -> int:
    s, out = parse_args(argv)
    write_result(run(s), out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
