"""TSE benchmark: ``python -m audiolab.bench tse [--quick] [--device cpu|cuda] [--configs small,...] [--out PATH]``.

Training throughput and peak memory of our TF-GridNet V2 extractor next to ESPnet's ``TFGridNetV2`` separator
(``espnet2.enh.separator.tfgridnetv2_separator``) at the same backbone configuration, in the same run:

- ``ours``: :class:`~audiolab.models.tse.nets.TSENet` with the TF-GridNet conv front end, ``fusion=add`` (blocks at
  D, as in the peer), no FiLM / re-injection; its extra work is the enrollment encoder and one cross-attention.
- ``peer``: ``TFGridNetV2(n_srcs=1, n_fft, stride, emb_dim=D, emb_ks=I, emb_hs=J, lstm_hidden_units=H, n_layers)``.

One training step = forward + negative SI-SDR (the project's) + backward + Adam step, batch ``B`` x ``seconds``,
timed round-robin (``time_interleaved``) after warm-up; throughput = audio seconds per wall second. Peak memory:
CUDA ``max_memory_allocated`` per model; CPU: one fresh subprocess per model (Linux ``VmHWM`` after
``/proc/self/clear_refs`` reset once the model is built), so the two numbers do not share one process's high-water
mark.

``checks.block_parity``: an ESPnet ``GridNetV2Block`` and ours loaded with the same weights (key map
:func:`espnet_block_to_ours`) on the same input: max |difference| for an ``I == J`` and an ``I > J`` block, and the
parameter counts of the two whole separators' backbones.

Installing the peer: ``pip install espnet`` fails with this stack (espnet 202511 depends on ``ci_sdr``, whose
metadata declares a direct-URL dependency ``padertorch @ git+https://...``, which pip refuses for PyPI
distributions), so ``make bench`` installs ``espnet==202511`` with ``--no-deps`` plus the two modules its separator
imports (``torch-complex``, ``typeguard``: the ``bench`` extra). Without espnet the peer rows are reported missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

DEFAULT_OUT = "experiments/tse_ladder/bench.json"

#: name -> (sample rate, n_fft, hop, D, I, J, H, blocks, batch, seconds)
CONFIGS: dict[str, tuple[int, int, int, int, int, int, int, int, int, float]] = {
    # smoke test only
    "tiny": (8000, 64, 32, 8, 1, 1, 8, 1, 1, 0.5),
    # CPU-sized: the ESPnet layout (I=4, J=1: unfold + deconv) and the V2 fast layout (I=J=1: reshape + Linear)
    "small_i4j1": (8000, 128, 64, 16, 4, 1, 32, 2, 2, 2.0),
    "small_i1j1": (16000, 256, 128, 32, 1, 1, 64, 2, 2, 2.0),
    # paper sizes (GPU): ESPnet WSJ0-2mix default (8.18 M) and V2 D128/I1/J1 (7.0 M), batch 4 x 4 s at 8 kHz
    "paper_i4j1": (8000, 128, 64, 48, 4, 1, 192, 6, 4, 4.0),
    "paper_d128": (8000, 128, 64, 128, 1, 1, 192, 6, 4, 4.0),
}


def espnet_available() -> bool:
    try:
        import espnet2.enh.separator.tfgridnetv2_separator  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means the peer cannot run
        return False
    return True


def build_ours(cfg: tuple) -> torch.nn.Module:
    from audiolab.models.tse.nets import TSENet

    sr, n_fft, hop, d, i, j, h, blocks, _, _ = cfg
    return TSENet(sample_rate=sr, n_fft=n_fft, hop_length=hop, encoder="conv", emb_dim=d, emb_ks=i, emb_hs=j,
                  lstm_hidden=h, n_blocks=blocks, attn_heads=4, fusion="add")


def build_peer(cfg: tuple) -> torch.nn.Module:
    from espnet2.enh.separator.tfgridnetv2_separator import TFGridNetV2

    sr, n_fft, hop, d, i, j, h, blocks, _, _ = cfg
    return TFGridNetV2(None, n_srcs=1, n_fft=n_fft, stride=hop, emb_dim=d, emb_ks=i, emb_hs=j, lstm_hidden_units=h,
                       n_layers=blocks, attn_n_head=4)


def espnet_block_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ESPnet ``GridNetV2Block`` state dict to :class:`audiolab.models.tse.nets.GridNetV2Block` keys."""
    out = {}
    for k, v in state.items():
        k2 = (k.replace("intra_norm.", "intra.norm.").replace("intra_rnn.", "intra.rnn.").replace("intra_linear.", "intra.out.")
              .replace("inter_norm.", "inter.norm.").replace("inter_rnn.", "inter.rnn.").replace("inter_linear.", "inter.out.")
              .replace("attn_conv_Q.", "attn.conv_q.").replace("attn_conv_K.", "attn.conv_k.").replace("attn_conv_V.", "attn.conv_v.")
              .replace("attn_norm_Q.", "attn.norm_q.").replace("attn_norm_K.", "attn.norm_k.").replace("attn_norm_V.", "attn.norm_v.")
              .replace("attn_concat_proj.", "attn.proj."))
        out[k2] = v
    return out


def block_parity(seed: int = 0) -> dict[str, Any]:
    """Max |ours - ESPnet| of one GridNetV2Block per layout with shared random weights (see the module docs)."""
    from espnet2.enh.separator.tfgridnetv2_separator import GridNetV2Block as PeerBlock

    from audiolab.models.tse.nets import GridNetV2Block

    out = {}
    for name, (d, i, j, f) in {"i1j1": (16, 1, 1, 33), "i4j1": (16, 4, 1, 33)}.items():
        torch.manual_seed(seed)
        peer = PeerBlock(d, i, j, f, 24, n_head=4, approx_qk_dim=64).eval()
        for p in peer.parameters():  # non-trivial norms and PReLUs
            p.data.add_(0.1 * torch.randn_like(p))
        ours = GridNetV2Block(d, f, i, j, 24, 4, approx_qk_dim=64).eval()
        ours.load_state_dict(espnet_block_to_ours(peer.state_dict()))
        x = torch.randn(2, d, 20, f)
        with torch.no_grad():
            diff = (ours(x) - peer(x)).abs().max().item()
        out[name] = {"max_abs_diff": diff, "params_ours": sum(p.numel() for p in ours.parameters()),
                     "params_peer": sum(p.numel() for p in peer.parameters())}
    return out


def _train_step_fn(model: torch.nn.Module, kind: str, batch: int, n: int, n_enroll: int, device: torch.device):
    from audiolab.losses.sdr import neg_si_sdr_loss

    g = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(batch, n, generator=g)).to(device)
    s = (0.1 * torch.randn(batch, n, generator=g)).to(device)
    e = (0.1 * torch.randn(batch, n_enroll, generator=g)).to(device)
    ilens = torch.full((batch,), n, dtype=torch.long, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        est = model(x, e) if kind == "ours" else model(x, ilens)[0][0]
        loss = neg_si_sdr_loss(est, s)
        loss.backward()
        opt.step()

    return step


def _vm_hwm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _memory_probe(spec: str) -> None:
    """Subprocess entry: build one model, reset the RSS high-water mark, run 2 train steps, print VmHWM (bytes)."""
    name, kind = spec.split(":")
    cfg = CONFIGS[name]
    torch.set_num_threads(1)
    model = build_ours(cfg) if kind == "ours" else build_peer(cfg)
    sr, batch, seconds = cfg[0], cfg[8], cfg[9]
    n = int(sr * seconds)
    step = _train_step_fn(model, kind, batch, n, n, torch.device("cpu"))
    base = _vm_hwm_bytes()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    before = _vm_hwm_bytes()
    for _ in range(2):
        step()
    print(json.dumps({"vm_hwm_bytes": _vm_hwm_bytes(), "rss_before_steps": before, "hwm_at_start": base}))


def _cpu_memory(name: str, kind: str) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "audiolab.models.tse.bench", "--memory-probe", f"{name}:{kind}"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-400:]}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    peak, before = r["vm_hwm_bytes"], r["rss_before_steps"]
    return {"peak_mib": round(peak / 2**20, 1), "training_mib": round((peak - before) / 2**20, 1) if before else None,
            "kind": "process_vm_hwm (fresh subprocess)"}


def run(configs: list[str], device: torch.device, warmup: int, repeats: int, memory: bool) -> dict[str, Any]:
    from audiolab.bench.common import PeakMemory, environment, time_interleaved
    from audiolab.models.tse.nets import count_parameters

    have_peer = espnet_available()
    result: dict[str, Any] = {"environment": environment(device), "peer": "espnet2 TFGridNetV2" if have_peer else None,
                              "configs": {}}
    if have_peer:
        from audiolab.bench.common import package_version

        result["peer_version"] = package_version("espnet")
        result["checks"] = {"block_parity": block_parity()}
    else:
        result["peer_missing"] = "espnet is not installed (make bench installs it with --no-deps; see the module docs)"
    for name in configs:
        cfg = CONFIGS[name]
        sr, n_fft, hop, d, i, j, h, blocks, batch, seconds = cfg
        n = int(sr * seconds)
        print(f"[tse bench] {name}: sr {sr} n_fft {n_fft} hop {hop} D {d} I {i} J {j} H {h} blocks {blocks} "
              f"batch {batch} x {seconds} s", file=sys.stderr, flush=True)
        torch.manual_seed(0)
        models = {"ours": build_ours(cfg).to(device)}
        if have_peer:
            models["peer"] = build_peer(cfg).to(device)
        row: dict[str, Any] = {"sample_rate": sr, "n_fft": n_fft, "hop": hop, "D": d, "I": i, "J": j, "H": h,
                               "blocks": blocks, "batch": batch, "seconds": seconds,
                               "params": {k: count_parameters(m) for k, m in models.items()}}
        fns = {k: _train_step_fn(m, k, batch, n, n, device) for k, m in models.items()}
        times = time_interleaved(fns, device, warmup, repeats)
        row["train_step"] = times
        row["audio_seconds_per_second"] = {k: round(batch * seconds / (t["median_ms"] / 1000), 3) for k, t in times.items()}
        if "peer" in times:
            row["ratio_ours_over_peer_time"] = round(times["ours"]["median_ms"] / times["peer"]["median_ms"], 3)
        if memory:
            if device.type == "cuda":
                mem = {}
                for k, fn in fns.items():
                    with PeakMemory(device) as pm:
                        fn()
                    mem[k] = pm.result
                row["peak_memory"] = mem
            else:
                row["peak_memory"] = {k: _cpu_memory(name, k) for k in models}
        result["configs"][name] = row
        del models, fns
    return result


def _markdown(res: dict[str, Any]) -> str:
    lines = ["| config | params ours / peer | train step ms ours / peer (median) | ratio | audio s/s ours / peer | "
             "peak MiB ours / peer |", "|---|---|---|---|---|---|"]
    for name, r in res["configs"].items():
        p = r["params"]
        t = {k: v["median_ms"] for k, v in r["train_step"].items()}
        mem = r.get("peak_memory", {})
        mm = " / ".join(str(mem.get(k, {}).get("peak_mib", mem.get(k, {}).get("peak_mib"))) for k in ("ours", "peer"))
        lines.append(f"| {name} | {p.get('ours')} / {p.get('peer', '-')} | {t.get('ours', 0):.0f} / "
                     f"{t.get('peer', float('nan')):.0f} | {r.get('ratio_ours_over_peer_time', '-')} | "
                     f"{r['audio_seconds_per_second'].get('ours')} / {r['audio_seconds_per_second'].get('peer', '-')} | {mm} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m audiolab.bench tse", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one small config, 1 repeat, no memory probe (smoke run)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)} (default: small_* on CPU, all on CUDA)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_probe:
        _memory_probe(a.memory_probe)
        return 0
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if a.configs:
        configs = [c.strip() for c in a.configs.split(",") if c.strip()]
        bad = [c for c in configs if c not in CONFIGS]
        if bad:
            p.error(f"unknown configs {bad}; choose from {', '.join(CONFIGS)}")
    else:
        configs = [c for c in CONFIGS if c != "tiny" and (device.type == "cuda" or c.startswith("small"))]
    warmup, repeats, memory = a.warmup, a.repeats, True
    if a.quick:
        configs, warmup, repeats, memory = configs[:1], 0, 1, False
    res = run(configs, device, warmup, repeats, memory)
    res["threads"] = a.threads
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from audiolab.data.cache import atomic_write_json

    atomic_write_json(out, res)
    print(_markdown(res))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
