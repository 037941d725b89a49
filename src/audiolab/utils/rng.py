"""Scoped, seeded randomness for evaluation code paths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with a fixed torch seed and restore the caller's RNG state afterwards.

    Used by probes, media and val/test steps: their noise realisation is fixed (comparable numbers) and the
    training RNG stream is not consumed (results do not depend on logging cadence).
    """
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
