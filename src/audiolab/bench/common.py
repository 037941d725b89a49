"""Timing / memory / environment helpers shared by the benchmark families.

* :func:`time_fn` / :func:`time_interleaved`: warmup calls, then ``repeats`` timed calls with
  ``time.perf_counter`` (``torch.cuda.synchronize`` before and after each call on a GPU); the headline
  number is the median.
* :class:`PeakMemory`: ``torch.cuda.max_memory_allocated`` (reset at the start of the block) on a GPU;
  on CPU the process high-water mark ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which cannot be reset:
  it is the peak of the whole process so far (monotonic across sections), stated in the result.
* :func:`device_description`: CPU model (``/proc/cpuinfo``) + core count, or the GPU name + memory.
* Entry-point plumbing every family bench shares: :func:`base_parser` (``--quick --device --out --seed``),
  :func:`apply_overrides` (command-line values over the family's default settings), :func:`write_result`
  (JSON + markdown), :func:`log`, :func:`free_memory`, :func:`csv_list`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "PeakMemory",
    "BenchSettings",
    "apply_overrides",
    "result_header",
    "base_parser",
    "csv_list",
    "free_memory",
    "log",
    "maxrss_bytes",
    "write_result",
    "device_description",
    "environment",
    "package_version",
    "resolve_device",
    "summarize",
    "sync",
    "time_fn",
    "time_interleaved",
    "utc_now",
]


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` | ``"cuda"`` (``"cuda:N"``) -> device; a clear error when CUDA is asked for but absent."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available in this environment (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda, got {name!r}")
    return dev


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(times_s: list[float]) -> dict[str, float | int | list[float]]:
    """Seconds -> ms statistics (median is the headline number)."""
    ms = [t * 1e3 for t in times_s]
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
        "repeats": len(ms),
        "times_ms": [round(t, 4) for t in ms],
    }


def _timed_call(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` (>= 1) timed times; return :func:`summarize`."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        fn()
    sync(device)
    times = [_timed_call(fn, device) for _ in range(repeats)]
    out = summarize(times)
    out["warmup"] = int(max(0, warmup))
    return out


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int) -> dict:
    """Time several functions round-robin (a, b, a, b, ...) so slow drifts in machine load hit all alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_timed_call(fn, device))
    out = {}
    for k, ts in times.items():
        out[k] = summarize(ts)
        out[k]["warmup"] = int(max(0, warmup))
    return out


def maxrss_bytes() -> int:
    """This process's peak resident set size so far (bytes; not resettable)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # Linux reports KiB, macOS bytes


class PeakMemory:
    """Context manager measuring peak memory of a block. ``.result`` after exit::

        {"peak_bytes": int, "peak_mib": float, "kind": "cuda_max_memory_allocated" | "process_max_rss"}
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.result: dict = {}

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            peak = int(torch.cuda.max_memory_allocated(self.device))
            kind = "cuda_max_memory_allocated"
        else:
            peak = maxrss_bytes()
            kind = "process_max_rss"  # whole-process high-water mark so far (not resettable)
        self.result = {"peak_bytes": peak, "peak_mib": round(peak / 2**20, 1), "kind": kind}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def device_description(device: torch.device) -> dict:
    """``{"type", "name", "description", ...}``: CPU model + usable cores, or GPU name + memory."""
    cores = _cpu_count()
    cpu = _cpu_model()
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        mem_gib = props.total_memory / 2**30
        return {
            "type": "cuda",
            "name": props.name,
            "description": f"{props.name} ({mem_gib:.0f} GiB), host {cpu} x{cores} cores",
            "total_memory_gib": round(mem_gib, 1),
            "capability": f"{props.major}.{props.minor}",
            "cpu": cpu,
            "cpu_cores": cores,
        }
    return {"type": "cpu", "name": cpu, "description": f"{cpu} x{cores} cores", "cpu": cpu, "cpu_cores": cores}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.type == "cuda":
        env["cuda_device_count"] = torch.cuda.device_count()
    return env


def free_memory(device: torch.device) -> None:
    """Collect garbage and return cached CUDA blocks (between benchmark cases)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def log(family: str, msg: str) -> None:
    """Progress line on stderr, ``[bench <family>] msg`` (stdout carries the markdown report)."""
    print(f"[bench {family}] {msg}", file=sys.stderr, flush=True)


def csv_list(value: str, convert: Callable[[str], Any] = str) -> list:
    """``"a, b,c"`` -> ``[convert("a"), convert("b"), convert("c")]`` (blank items dropped)."""
    return [convert(v.strip()) for v in value.split(",") if v.strip()]


def base_parser(family: str, description: str, default_out: str, quick_help: str) -> argparse.ArgumentParser:
    """``python -m audiolab.bench <family>`` parser with the options every family has:
    ``--quick``, ``--device`` (cpu | cuda), ``--out`` (JSON path, default ``default_out``), ``--seed``."""
    p = argparse.ArgumentParser(prog=f"python -m audiolab.bench {family}", description=description)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--out", default=default_out, help=f"JSON output path (default {default_out})")
    p.add_argument("--seed", type=int, default=None)
    return p


def apply_overrides(settings: Any, overrides: dict[str, Any]) -> Any:
    """Set every non-None ``overrides`` value as an attribute of ``settings`` (a dataclass); returns it."""
    for k, v in overrides.items():
        if v is not None:
            setattr(settings, k, v)
    return settings


def write_result(result: dict, out: str | Path, markdown: Callable[[dict], str]) -> Path:
    """Write ``result`` as indented JSON to ``out`` (parents created), print ``markdown(result)`` and the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result))
    print(f"JSON: {out}")
    return out


@dataclass
class BenchSettings:
    """Settings every family benchmark has; a family's ``Settings`` dataclass extends it."""

    device: str = "cpu"
    quick: bool = False
    seed: int = 0


def result_header(benchmark: str, schema_version: int, device: torch.device) -> dict:
    """First keys of every result JSON: ``benchmark``, ``schema_version``, ``date`` (UTC), ``device``."""
    return {"benchmark": benchmark, "schema_version": schema_version, "date": utc_now(),
            "device": device_description(device)}
