"""Codec benchmark: ``python -m audiolab.bench codec [--quick] [--device cpu|cuda] [--threads 1,2] [--out PATH]``.

Our causal 24 kHz codec built at EnCodec's size (SEANet 32 filters, ratios 8-5-4-2, 2-layer LSTM, dimension 128,
``true_skip=False``: 7,425,792 encoder / 7,426,018 decoder parameters, RVQ 32 x 1024) next to the ``encodec``
package's 24 kHz architecture, ``EncodecModel.encodec_model_24khz(pretrained=False)`` (random weights; the
``torch.hub`` download functions are disabled while it is built, so nothing can be fetched). Both run at 6 kbps:
8 codebooks x 10 bits x 75 Hz (ours ``n_q=8``, the peer ``set_target_bandwidth(6.0)``, which runs its quantizer
with the same 8 layers). The peer is loaded with our (random, seeded) weights, tensor for tensor — timing-neutral,
and it makes both models compute the same function (checked in ``checks.ours_vs_peer``).

Sections of the JSON written to ``--out`` (default ``experiments/codec_amplitude/bench.json``):

1. ``parameters``: encoder / decoder parameters, quantizer parameters and buffers, for both models (and for
   ``ours_prepared``, whose baked weights no longer hold weight norm's separate magnitude vectors ``g``).
2. ``checks``: prepared copy vs training modules (codes equal), peer with weight norm removed vs peer, ours vs peer
   with the peer's padding set to ours (``constant``; it ships with ``reflect``), streaming vs whole file.
3. ``memory``: per model, the peak memory of one encode + decode of the input. CPU: one fresh subprocess per
   model (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the model is built; elsewhere
   ``ru_maxrss``), since one process's RSS cannot be split between four models; ``--memory process`` (the
   ``--quick`` default) only records this process's high-water mark. CUDA: ``max_memory_allocated`` per model.
4. ``threads.<n>`` for each ``--threads`` value (default 1 and 2):

   * ``whole_file``: encode and decode of the same random input (``0.1 * N(0, 1)``, 10 s, ``--seconds``), B=1,
     eval + ``torch.inference_mode()``, ``--warmup`` calls then the median of ``--repeats``, all models
     round-robin in the same run. Models: ``ours`` (the training modules: weight norm recomputed on every call, as
     the peer does), ``ours_prepared`` (:func:`audiolab.models.codec.infer.prepare_for_inference`), ``peer`` (as
     shipped) and ``peer_baked`` (a second instance, ``torch.nn.utils.remove_weight_norm``). Real-time factor = audio
     seconds / wall seconds (higher is faster); ratios are of median times (< 1: ours faster).
   * ``streaming``: ours only (the peer has no streaming API): ``StreamingEncoder`` fed 20 ms chunks
     (``--chunk-ms``), each push's codes fed to a ``StreamingDecoder``; ``ours`` and ``ours_prepared`` in
     lockstep. Per-chunk latency (median / p90 / max) and the equivalent real-time factor.

   Timings are flagged ``noisy`` when max/min over the repeats exceeds 2: with more threads than idle cores
   (other processes on the machine) OpenMP barriers stall and single calls take many times longer. The load
   average is recorded before and after each thread count.

A markdown summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from audiolab.bench.common import (
    BenchSettings,
    PeakMemory,
    apply_overrides,
    base_parser,
    csv_list,
    environment,
    free_memory,
    log,
    maxrss_bytes,
    package_version,
    resolve_device,
    result_header,
    sync,
    time_interleaved,
    write_result,
)
from audiolab.models.codec.infer import StreamingDecoder, StreamingEncoder, prepare_for_inference
from audiolab.models.codec.model import Codec

SCHEMA_VERSION = 1
DEFAULT_OUT = "experiments/codec_amplitude/bench.json"
SAMPLE_RATE = 24000
HOP_LENGTH = 320  # 8 * 5 * 4 * 2: 75 frames/s
# EnCodec 24 kHz at equal size: true_skip=False gives its 1x1-conv residual shortcuts (our default is identity)
OURS_CONFIG: dict = {
    "sample_rate": SAMPLE_RATE,
    "seanet": {"dimension": 128, "n_filters": 32, "ratios": [8, 5, 4, 2], "lstm": 2, "causal": True,
               "true_skip": False, "norm": "weight_norm", "pad_mode": "constant"},
    "quantizer": {"n_q": 32, "bins": 1024},
    "output": "unbounded",
}  # fmt: skip
PEER_BUILDER = "encodec.EncodecModel.encodec_model_24khz(pretrained=False)"
BANDWIDTH_KBPS = 6.0
NOT_SLOWER_TOLERANCE = 0.05  # "not slower" allows 5 % of timing noise (shared CPUs)
# repeats whose max/min exceeds this are flagged: other processes compete for the cores (threads > idle cores)
NOISY_SPREAD = 2.0
MODELS = ("ours", "ours_prepared", "peer", "peer_baked")
STREAM_MODELS = ("ours", "ours_prepared")


@dataclass
class Settings(BenchSettings):
    threads: list[int] = field(default_factory=lambda: [1, 2])
    seconds: float = 10.0
    warmup: int = 1
    repeats: int = 5
    chunk_ms: float = 20.0
    stream_seconds: float = 5.0
    stream_warmup_seconds: float = 0.48
    peer: bool = True
    memory: str = "subprocess"  # subprocess | process | off (CPU; CUDA always measures in process)
    memory_probe: str | None = None  # internal: run one model's memory probe and exit


def default_settings(device: str, quick: bool) -> Settings:
    """Full: 10 s input, 1 warmup + median of 5, 5 s stream; quick: 1 s input, 1 + 1, 0.48 s stream."""
    if quick:
        return Settings(device=device, quick=True, seconds=1.0, warmup=1, repeats=1, stream_seconds=0.48,
                        stream_warmup_seconds=0.12, memory="process")
    return Settings(device=device)


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# --------------------------------------------------------------------------------------------- models
@contextlib.contextmanager
def _no_downloads() -> Iterator[None]:
    """``torch.hub`` download functions raise inside the block (the peer must be built from random weights)."""
    def refuse(*args, **kwargs):
        raise RuntimeError("audiolab.models.codec.bench: a download was attempted while building the peer model")

    saved = torch.hub.load_state_dict_from_url, torch.hub.download_url_to_file
    torch.hub.load_state_dict_from_url, torch.hub.download_url_to_file = refuse, refuse
    try:
        yield
    finally:
        torch.hub.load_state_dict_from_url, torch.hub.download_url_to_file = saved


def build_ours(seed: int) -> Codec:
    torch.manual_seed(seed)
    return Codec(**copy.deepcopy(OURS_CONFIG)).eval()


def peer_available() -> tuple[bool, str | None]:
    try:
        import encodec  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return False, (f"`import encodec` failed ({type(e).__name__}: {e}): peer comparison skipped; "
                       "install the bench extra: pip install -e '.[bench]'")
    return True, None


def build_peer() -> nn.Module:
    from encodec import EncodecModel

    with _no_downloads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm deprecation (encodec uses the hook version)
        model = EncodecModel.encodec_model_24khz(pretrained=False)
    model.set_target_bandwidth(BANDWIDTH_KBPS)
    return model.eval()


def copy_weights_to_peer(ours: Codec, peer: nn.Module) -> int:
    """Load our encoder / decoder tensors and codebooks into the peer (same module order and shapes); -> count."""
    src, dst = ours.state_dict(), peer.state_dict()
    new = dict(dst)
    n = 0
    for part in ("encoder.", "decoder."):
        a = [(k, v) for k, v in src.items() if k.startswith(part)]
        b = [k for k in dst if k.startswith(part)]
        if len(a) != len(b):
            raise RuntimeError(f"{part} tensors differ in number: ours {len(a)}, peer {len(b)}")
        for (ka, va), kb in zip(a, b):
            if va.shape != dst[kb].shape:
                raise RuntimeError(f"shape mismatch {ka} {tuple(va.shape)} vs {kb} {tuple(dst[kb].shape)}")
            new[kb] = va
            n += 1
    for k in range(ours.n_q):
        key = f"quantizer.vq.layers.{k}._codebook.embed"
        if key in new:
            new[key] = new[f"quantizer.vq.layers.{k}._codebook.embed_avg"] = ours.quantizer.layers[k].embed
            n += 1
    peer.load_state_dict(new)  # copies
    return n


def bake_peer_(peer: nn.Module) -> int:
    """Fold the peer's (hook-based) weight norm into plain weights, in place; -> count. (A hook-based weight-normed
    module cannot be deep-copied, so each peer variant is built afresh.)"""
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in list(peer.modules()):
            try:
                torch.nn.utils.remove_weight_norm(m)
                n += 1
            except ValueError:  # no weight norm on this module
                pass
    return n


def _numel(tensors) -> int:
    return int(sum(t.numel() for t in tensors))


def parameter_counts(model: nn.Module, n_q_used: int, bins: int, dim: int) -> dict:
    enc, dec, q = model.encoder, model.decoder, model.quantizer
    return {
        "encoder": _numel(enc.parameters()),
        "decoder": _numel(dec.parameters()),
        "quantizer_parameters": _numel(q.parameters()),
        "quantizer_buffer_elements": _numel(q.buffers()),
        "codebook_elements_used": n_q_used * bins * dim,
        "total_parameters": _numel(model.parameters()),
    }


# --------------------------------------------------------------------------------------------- inputs / calls
def _samples(seconds: float, multiple: int) -> int:
    return max(multiple, int(round(seconds * SAMPLE_RATE / multiple)) * multiple)


def make_input(samples: int, seed: int, device: torch.device) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(1, 1, samples, generator=gen)).to(device)


class Runner:
    """Uniform encode / decode calls: ours ``encode(x, n_q) -> (codes, scales)``, the peer ``encode(x) -> frames``."""

    def __init__(self, name: str, model: nn.Module, kind: str, n_q: int):
        self.name, self.model, self.kind, self.n_q = name, model, kind, n_q

    def encode(self, x: Tensor):
        if self.kind == "ours":
            return self.model.encode(x, n_q=self.n_q)[0]
        return self.model.encode(x)

    def decode(self, encoded, length: int) -> Tensor:
        if self.kind == "ours":
            return self.model.decode(encoded, None, length)
        return self.model.decode(encoded)[..., :length]

    @staticmethod
    def codes_of(encoded) -> Tensor:
        return encoded if isinstance(encoded, Tensor) else encoded[0][0]


# --------------------------------------------------------------------------------------------- memory
_STATUS_RE = re.compile(r"^(VmHWM|VmRSS):\s+(\d+)\s+kB", re.M)


def _proc_status() -> dict[str, int] | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            return {k: int(v) * 1024 for k, v in _STATUS_RE.findall(f.read())}
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``; Linux >= 4.0). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build_variant(name: str, seed: int) -> nn.Module:
    """One model of :data:`MODELS`, built alone (memory probe; the peer keeps its own random weights there)."""
    if name in ("ours", "ours_prepared"):
        ours = build_ours(seed)
        return ours if name == "ours" else prepare_for_inference(ours)
    peer = build_peer()
    if name == "peer_baked":
        bake_peer_(peer)
    return peer


def memory_probe(name: str, seconds: float, seed: int, threads: int) -> dict:
    """In a fresh process: build ``name``, then one encode + decode of the input; the peak resident memory
    (``VmHWM``, reset just before the call) and the resident memory before it (model built, input made)."""
    torch.set_num_threads(threads)
    model = build_variant(name, seed)
    runner = Runner(name, model, "ours" if name.startswith("ours") else "peer", 8)
    if runner.kind == "ours":
        runner.n_q = model.bandwidth_to_n_q(BANDWIDTH_KBPS)
    x = make_input(_samples(seconds, HOP_LENGTH), seed, torch.device("cpu"))
    gc.collect()
    reset = _reset_peak_rss()
    before = _proc_status() or {}
    with torch.inference_mode():
        runner.decode(runner.encode(x), x.shape[-1])
    after = _proc_status() or {}
    if reset and "VmHWM" in after:
        peak, kind = after["VmHWM"], "VmHWM of a fresh process (reset after the model was built)"
    else:
        peak, kind = maxrss_bytes(), "ru_maxrss of a fresh process (includes model construction)"
    return {"peak_bytes": peak, "peak_mib": round(peak / 2**20, 1),
            "before_call_mib": round(before.get("VmRSS", 0) / 2**20, 1),
            "delta_mib": round((peak - before.get("VmRSS", 0)) / 2**20, 1) if before else None, "kind": kind}


def bench_memory(s: Settings, runners: dict[str, Runner], x: Tensor, device: torch.device) -> dict:
    """Peak memory of one encode + decode per model: CUDA ``max_memory_allocated`` in this process; on CPU a
    fresh subprocess per model (``--memory subprocess``: the RSS of one process cannot be attributed to one
    of four models) or only this process's high-water mark (``--memory process``)."""
    if s.memory == "off":
        return {"skipped": "--memory off"}
    if device.type == "cuda":
        out = {}
        for k, r in runners.items():
            free_memory(device)
            with torch.inference_mode(), PeakMemory(device) as mem:
                r.decode(r.encode(x), x.shape[-1])
            out[k] = mem.result
        return {"method": "torch.cuda.max_memory_allocated per model (weights included)", "models": out}
    if s.memory == "process":
        with PeakMemory(device) as mem:
            pass
        return {"method": "process high-water mark so far (all models together; --memory subprocess for per model)",
                "process": mem.result}
    out = {}
    for k in runners:
        log("codec", f"  memory probe {k} (subprocess)")
        cmd = [sys.executable, "-m", "audiolab.models.codec.bench", "--memory-probe", k, "--seconds", str(s.seconds),
               "--seed", str(s.seed), "--threads", str(s.threads[0])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out[k] = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
            "error": f"probe exited {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return {"method": "one fresh subprocess per model: build, then one encode + decode of the same-length input",
            "models": out}


# --------------------------------------------------------------------------------------------- sections
@contextlib.contextmanager
def _pad_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Temporarily set ``pad_mode`` on every module that has one (the peer's ``SConv1d``)."""
    saved = [(m, m.pad_mode) for m in model.modules() if hasattr(m, "pad_mode")]
    for m, _ in saved:
        m.pad_mode = mode
    try:
        yield
    finally:
        for m, old in saved:
            m.pad_mode = old


def run_checks(runners: dict[str, Runner], x: Tensor) -> dict:
    length = x.shape[-1]
    out: dict = {}
    with torch.inference_mode():
        enc = {k: r.encode(x) for k, r in runners.items()}
        codes = {k: Runner.codes_of(v) for k, v in enc.items()}
        ref_y = runners["ours"].decode(enc["ours"], length)
        y_prep = runners["ours_prepared"].decode(enc["ours"], length)
        out["ours_prepared_vs_ours"] = {
            "codes_equal": bool(torch.equal(codes["ours"], codes["ours_prepared"])),
            "decode_max_abs_diff": float((y_prep - ref_y).abs().max()),
        }
        if "peer" in runners:
            peer = runners["peer"]
            c_peer, c_baked = codes["peer"], codes["peer_baked"]
            out["peer_baked_vs_peer"] = {"codes_agreement": float((c_peer == c_baked).float().mean())}
            out["n_q"] = {"ours": int(codes["ours"].shape[1]), "peer": int(c_peer.shape[1])}
            out["frames"] = {"ours": int(codes["ours"].shape[-1]), "peer": int(c_peer.shape[-1])}
            # same weights and the same (constant) padding: both should compute the same function
            with _pad_mode(peer.model, "constant"):
                c_pc = Runner.codes_of(peer.encode(x))
                y_pc = peer.decode([(codes["ours"], None)], length)  # the peer's frame list
            out["ours_vs_peer"] = {
                "note": "peer with our weights and pad_mode='constant' (it ships with 'reflect'), same input",
                "codes_agreement_all_layers": float((c_pc == codes["ours"]).float().mean()),
                "codes_agreement_first_layer": float((c_pc[:, 0] == codes["ours"][:, 0]).float().mean()),
                "decode_same_codes_max_abs_diff": float((y_pc - ref_y).abs().max()),
                "decode_rms": float(ref_y.pow(2).mean().sqrt()),
            }
    return out


def bench_whole_file(runners: dict[str, Runner], x: Tensor, s: Settings, device: torch.device) -> dict:
    length = x.shape[-1]
    audio_s = length / SAMPLE_RATE
    with torch.inference_mode():
        encoded = {k: r.encode(x) for k, r in runners.items()}
        enc_fns = {k: (lambda r=r: r.encode(x)) for k, r in runners.items()}
        dec_fns = {k: (lambda r=r, e=encoded[k]: r.decode(e, length)) for k, r in runners.items()}
        log("codec", f"  whole_file encode ({', '.join(runners)}): warmup {s.warmup}, repeats {s.repeats}")
        t_enc = time_interleaved(enc_fns, device, warmup=s.warmup, repeats=s.repeats)
        log("codec", f"  whole_file decode: warmup {s.warmup}, repeats {s.repeats}")
        t_dec = time_interleaved(dec_fns, device, warmup=s.warmup, repeats=s.repeats)
    out: dict = {"audio_seconds": audio_s, "n_samples": length, "batch_size": 1,
                 "timing_method": "round-robin over the models, same input, same run; median of repeats",
                 "models": {}}
    for k in runners:
        e, d = t_enc[k]["median_ms"], t_dec[k]["median_ms"]
        out["models"][k] = {
            "encode_ms": e, "decode_ms": d,
            "encode_real_time_factor": audio_s / (e / 1e3), "decode_real_time_factor": audio_s / (d / 1e3),
            "encode_timing": t_enc[k], "decode_timing": t_dec[k],
        }  # fmt: skip
    pairs = {"ours_over_peer": ("ours", "peer"), "prepared_over_peer_baked": ("ours_prepared", "peer_baked"),
             "prepared_over_peer": ("ours_prepared", "peer"), "prepared_over_ours": ("ours_prepared", "ours")}
    ratios = {}
    for name, (a, b) in pairs.items():
        if a in runners and b in runners:
            ma, mb = out["models"][a], out["models"][b]
            r = {"encode": ma["encode_ms"] / mb["encode_ms"], "decode": ma["decode_ms"] / mb["decode_ms"]}
            if b.startswith("peer"):
                r["not_slower"] = bool(max(r.values()) <= 1.0 + NOT_SLOWER_TOLERANCE)
            ratios[name] = r
    out["time_ratios"] = ratios
    out["time_ratio_note"] = (f"median time of the first model / the second (< 1: first faster); not_slower allows "
                              f"{NOT_SLOWER_TOLERANCE:.0%} noise")
    spread = max(t[k]["max_ms"] / t[k]["min_ms"] for t in (t_enc, t_dec) for k in runners)
    out["max_spread"] = spread  # max / min over the repeats, worst model and direction
    out["noisy"] = bool(spread > NOISY_SPREAD)
    return out


def _percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def _stream_once(models: dict[str, Codec], x: Tensor, chunk: int, n_q: int, device: torch.device,
                 record: bool) -> dict:
    """Stream ``x`` through every model in lockstep (chunk i to each model, then chunk i + 1)."""
    encs = {k: StreamingEncoder(m, n_q) for k, m in models.items()}
    decs = {k: StreamingDecoder(m) for k, m in models.items()}
    lat = {k: {"encode": [], "decode": []} for k in models}
    codes = {k: [] for k in models}
    audio = {k: [] for k in models}
    for i in range(0, x.shape[-1], chunk):
        piece = x[..., i:i + chunk]
        for k in models:
            sync(device)
            t0 = time.perf_counter()
            c = encs[k].push(piece)
            sync(device)
            t1 = time.perf_counter()
            y = decs[k].push(c)
            sync(device)
            t2 = time.perf_counter()
            lat[k]["encode"].append(t1 - t0)
            lat[k]["decode"].append(t2 - t1)
            if record:
                codes[k].append(c)
                audio[k].append(y)
    for k in models:  # the stream length is a whole number of frames: flush has nothing left
        rest = encs[k].flush()
        if record and rest.shape[-1]:
            codes[k].append(rest.to(device))
            audio[k].append(decs[k].push(rest.to(device)))
    return {"latency": lat, "codes": codes, "audio": audio}


def bench_streaming(models: dict[str, Codec], x: Tensor, warm: Tensor, s: Settings, n_q: int,
                    device: torch.device, check: bool) -> dict:
    chunk = int(round(s.chunk_ms * SAMPLE_RATE / 1000))
    audio_s = x.shape[-1] / SAMPLE_RATE
    log("codec", f"  streaming {audio_s:g} s in {s.chunk_ms:g} ms chunks ({', '.join(models)}, lockstep)")
    _stream_once(models, warm, chunk, n_q, device, record=False)
    res = _stream_once(models, x, chunk, n_q, device, record=check)
    out: dict = {"audio_seconds": audio_s, "chunk_ms": s.chunk_ms, "chunk_samples": chunk,
                 "hop_length": next(iter(models.values())).hop_length,
                 "method": "StreamingEncoder.push(chunk) -> codes (1 or 2 frames) -> StreamingDecoder.push(codes); "
                           "models in lockstep; warm-up stream first",
                 "models": {}}
    for k in models:
        enc, dec = res["latency"][k]["encode"], res["latency"][k]["decode"]
        tot = [a + b for a, b in zip(enc, dec)]
        row: dict = {"chunks": len(tot)}
        for name, v in (("encode", enc), ("decode", dec), ("round_trip", tot)):
            row[name] = {
                "real_time_factor": audio_s / sum(v),
                "chunk_ms_median": statistics.median(v) * 1e3,
                "chunk_ms_p90": _percentile(v, 0.9) * 1e3,
                "chunk_ms_max": max(v) * 1e3,
            }
        row["round_trip"]["chunks_over_budget"] = int(sum(t * 1e3 > s.chunk_ms for t in tot))
        if check:
            with torch.inference_mode():
                whole = models[k].encode(x, n_q=n_q)[0]
                y_whole = models[k].decode(whole, None, x.shape[-1])
            streamed = torch.cat(res["codes"][k], dim=-1)
            y_stream = torch.cat(res["audio"][k], dim=-1)[..., :x.shape[-1]]
            row["codes_equal_whole_file"] = bool(torch.equal(streamed, whole))
            row["audio_max_abs_diff_whole_file"] = float((y_stream - y_whole).abs().max())
        out["models"][k] = row
    return out


# --------------------------------------------------------------------------------------------- report
def _f(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"## Codec benchmark — {result['device']['description']} (torch {env['torch']}, "
             f"encodec {env.get('encodec') or 'not installed'}, {result['date']}, "
             f"load average {env.get('load_average_1_5_15min')})", ""]
    pr = result["parameters"]
    lines += ["### parameters", "", "| model | encoder | decoder | quantizer params | quantizer buffers | total |",
              "|---|---:|---:|---:|---:|---:|"]
    for k, p in pr.items():
        if isinstance(p, dict) and "encoder" in p:
            lines.append(f"| {k} | {p['encoder']:,} | {p['decoder']:,} | {p['quantizer_parameters']:,} | "
                         f"{p['quantizer_buffer_elements']:,} | {p['total_parameters']:,} |")
    lines.append("")
    if result["peer"]["skipped"]:
        lines += [f"**peer skipped**: {result['peer']['skipped']}", ""]
    w = result["settings"]
    for t, sec in result["threads"].items():
        wf = sec["whole_file"]
        lines += [f"### {t} thread(s): whole file ({wf['audio_seconds']:g} s, B=1, {w['bandwidth_kbps']:g} kbps, "
                  f"median of {w['repeats']})", "",
                  "| model | encode ms | encode RTF | decode ms | decode RTF |", "|---|---:|---:|---:|---:|"]
        for k, m in wf["models"].items():
            lines.append(f"| {k} | {m['encode_ms']:.1f} | {m['encode_real_time_factor']:.1f}x | "
                         f"{m['decode_ms']:.1f} | {m['decode_real_time_factor']:.1f}x |")
        if wf.get("noisy"):
            lines += ["", f"**noisy**: max/min over the repeats up to {wf['max_spread']:.1f}x (load average "
                          f"{sec.get('load_average_before')} -> {sec.get('load_average_after')}): other processes "
                          "compete for the cores; ratios unreliable"]
        if wf["time_ratios"]:
            lines += ["", "| time ratio | encode | decode | not slower |", "|---|---:|---:|---|"]
            for k, r in wf["time_ratios"].items():
                ns = r.get("not_slower")
                lines.append(f"| {k} | {r['encode']:.3f} | {r['decode']:.3f} | "
                             f"{'-' if ns is None else ('yes' if ns else 'NO')} |")
        st = sec["streaming"]
        lines += ["", f"### {t} thread(s): streaming ({st['audio_seconds']:g} s in {st['chunk_ms']:g} ms chunks)", "",
                  "| model | enc RTF | dec RTF | round-trip RTF | chunk ms median | p90 | max | over budget |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for k, m in st["models"].items():
            rt = m["round_trip"]
            lines.append(f"| {k} | {m['encode']['real_time_factor']:.2f}x | {m['decode']['real_time_factor']:.2f}x | "
                         f"{rt['real_time_factor']:.2f}x | {rt['chunk_ms_median']:.1f} | {rt['chunk_ms_p90']:.1f} | "
                         f"{rt['chunk_ms_max']:.1f} | {rt['chunks_over_budget']}/{m['chunks']} |")
        lines.append("")
    mem = result.get("memory", {})
    if "models" in mem:
        lines += [f"### peak memory, one encode + decode ({mem['method']})", "",
                  "| model | peak MiB | before the call MiB | delta MiB |", "|---|---:|---:|---:|"]
        for k, m in mem["models"].items():
            if "error" in m:
                lines.append(f"| {k} | {m['error']} | | |")
            else:
                lines.append(f"| {k} | {m['peak_mib']:.0f} | {_f(m.get('before_call_mib'), '.0f')} | "
                             f"{_f(m.get('delta_mib'), '.0f')} |")
        lines.append("")
    elif "process" in mem:
        lines += [f"peak memory: {mem['process']['peak_mib']:.0f} MiB ({mem['method']})", ""]
    ch = result["checks"]
    bits = [f"prepared codes == ours: {ch['ours_prepared_vs_ours']['codes_equal']}"]
    if "ours_vs_peer" in ch:
        c = ch["ours_vs_peer"]
        bits.append(f"ours vs peer (same weights, constant pad): codes agree {c['codes_agreement_all_layers']:.1%}, "
                    f"decode max |diff| {c['decode_same_codes_max_abs_diff']:.1e}")
    first = next(iter(result["threads"].values()), None)
    if first:
        for k, m in first["streaming"]["models"].items():
            if "codes_equal_whole_file" in m:
                bits.append(f"{k} streaming codes == whole file: {m['codes_equal_whole_file']}")
    lines += ["checks: " + "; ".join(bits), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- entry points
def run(s: Settings) -> dict:
    device = resolve_device(s.device)
    if not s.threads or any(t < 1 for t in s.threads):
        raise SystemExit(f"--threads must be positive integers, got {s.threads}")
    original_threads = torch.get_num_threads()
    has_peer, skip_reason = peer_available() if s.peer else (False, "disabled (--no-peer)")
    if skip_reason:
        log("codec", f"peer: {skip_reason}")

    ours = build_ours(s.seed).to(device)
    n_q = ours.bandwidth_to_n_q(BANDWIDTH_KBPS)
    prepared = prepare_for_inference(ours)
    runners = {"ours": Runner("ours", ours, "ours", n_q), "ours_prepared": Runner("ours_prepared", prepared, "ours", n_q)}
    params = {"ours": parameter_counts(ours, n_q, ours.bins, ours.dimension),
              "ours_prepared": parameter_counts(prepared, n_q, ours.bins, ours.dimension)}
    peer_info: dict = {"builder": PEER_BUILDER, "bandwidth_kbps": BANDWIDTH_KBPS, "skipped": skip_reason,
                       "version": package_version("encodec")}
    if has_peer:
        peer = build_peer()
        params["peer"] = parameter_counts(peer, n_q, ours.bins, ours.dimension)  # before anything is changed
        peer_info["tensors_copied_from_ours"] = copy_weights_to_peer(ours, peer)
        peer_baked = build_peer()
        copy_weights_to_peer(ours, peer_baked)
        peer_info["weight_norms_removed_in_peer_baked"] = bake_peer_(peer_baked)
        runners["peer"] = Runner("peer", peer.to(device), "peer", n_q)
        runners["peer_baked"] = Runner("peer_baked", peer_baked.to(device), "peer", n_q)
        params["equal_size"] = bool(params["ours"]["encoder"] == params["peer"]["encoder"]
                                    and params["ours"]["decoder"] == params["peer"]["decoder"])

    x = make_input(_samples(s.seconds, ours.hop_length), s.seed, device)
    stream_unit = math.lcm(int(round(s.chunk_ms * SAMPLE_RATE / 1000)), ours.hop_length)
    xs = make_input(_samples(s.stream_seconds, stream_unit), s.seed + 1, device)
    xw = make_input(_samples(s.stream_warmup_seconds, stream_unit), s.seed + 2, device)

    result: dict = {
        **result_header("codec", SCHEMA_VERSION, device),
        "environment": {**environment(device), "encodec": package_version("encodec"),
                        "load_average_1_5_15min": _load_average()},
        "settings": {**asdict(s), "n_q": n_q, "bandwidth_kbps": BANDWIDTH_KBPS, "frame_rate": ours.frame_rate,
                     "bits_per_code": math.log2(ours.bins), "ours_config": OURS_CONFIG,
                     "input": "0.1 * N(0, 1), B=1, mono, seeded", "models": list(runners)},
        "peer": peer_info,
        "parameters": params,
    }
    try:
        torch.set_num_threads(s.threads[0])
        log("codec", f"checks ({x.shape[-1] / SAMPLE_RATE:g} s input)")
        result["checks"] = run_checks(runners, x)
        log("codec", f"memory ({s.memory})")
        if s.memory != "process":
            result["memory"] = bench_memory(s, runners, x, device)
        result["threads"] = {}
        for i, t in enumerate(s.threads):
            torch.set_num_threads(t)
            log("codec", f"threads = {t}")
            sec = {"threads": t, "load_average_before": _load_average(),
                   "whole_file": bench_whole_file(runners, x, s, device)}
            sec["streaming"] = bench_streaming({k: runners[k].model for k in STREAM_MODELS}, xs, xw, s, n_q, device,
                                               check=(i == 0))
            sec["load_average_after"] = _load_average()
            result["threads"][str(t)] = sec
            free_memory(device)
        if s.memory == "process":  # after everything: the whole run's high-water mark
            result["memory"] = bench_memory(s, runners, x, device)
    finally:
        torch.set_num_threads(original_threads)
    return result


def parse_args(argv: list[str] | None) -> tuple[Settings, Path]:
    p = base_parser("codec", __doc__.split("\n\n")[0], DEFAULT_OUT, "1 s input, 1 repeat, short stream (smoke run)")
    p.add_argument("--threads", type=lambda x: csv_list(x, int), default=None,
                   help="comma list of torch thread counts (default 1,2)")
    p.add_argument("--seconds", type=float, default=None, help="whole-file input length (default 10)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--chunk-ms", type=float, default=None, help="streaming chunk (default 20 ms)")
    p.add_argument("--stream-seconds", type=float, default=None, help="streamed signal length (default 5)")
    p.add_argument("--stream-warmup-seconds", type=float, default=None)
    p.add_argument("--no-peer", action="store_true", help="skip the encodec comparison")
    p.add_argument("--memory", choices=("subprocess", "process", "off"), default=None,
                   help="CPU peak memory: one subprocess per model (default), this process's high-water mark "
                        "(--quick default), or off")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    s = default_settings(a.device, a.quick)
    s.peer = not a.no_peer
    s.memory = a.memory or s.memory
    s.memory_probe = a.memory_probe
    overrides = {"seed": a.seed, "threads": a.threads, "seconds": a.seconds, "warmup": a.warmup,
                 "repeats": a.repeats, "chunk_ms": a.chunk_ms, "stream_seconds": a.stream_seconds,
                 "stream_warmup_seconds": a.stream_warmup_seconds}
    return apply_overrides(s, overrides), Path(a.out)


def main(argv: list[str] | None = None) -> int:
    s, out = parse_args(argv)
    if s.memory_probe:  # internal: one model's memory in a fresh process (see bench_memory)
        if s.memory_probe not in MODELS:
            raise SystemExit(f"--memory-probe must be one of {MODELS}")
        print(json.dumps(memory_probe(s.memory_probe, s.seconds, s.seed, s.threads[0])))
        return 0
    result = run(s)
    write_result(result, out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
