"""``make data``'s unseen-instrument sets (issue 13.5): ``python -m audiolab.models.ddsp.demo --instruments DIR``
renders FluidR3 cello / trumpet / flute phrase sets, >= 60 s each, one training folder per instrument, melodies the
embedded demo never used; a second run re-renders nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiolab.data.sources import SourceMissing
from audiolab.models.ddsp import demo


def test_instrument_sets_render_sixty_seconds_each_and_are_idempotent(tmp_path) -> None:
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed (make data installs it)")
    try:
        manifest = demo.render_instruments(tmp_path)
    except SourceMissing as e:
        pytest.skip(str(e))
    names = [spec.name for spec in demo.INSTRUMENT_SETS]
    assert names == ["cello", "trumpet", "flute"]
    for name in names:
        files = sorted((tmp_path / name).glob("*.flac"))
        assert len(files) == len(demo.INSTRUMENT_SECONDS), name
        seconds = 0.0
        for f in files:
            audio, sr = sf.read(str(f))
            assert sr == demo.SAMPLE_RATE
            assert np.sqrt(np.mean(audio**2)) > 1e-3, f"{f.name} is silent"
            seconds += len(audio) / sr
        assert seconds >= 60.0, (name, seconds)
    listed = {e["file"] for e in manifest["files"]}
    assert listed == {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*.flac")}
    # the flute set is not the embedded demo's flute: different seeds, different notes
    embedded = json.loads((demo.HERE / "manifest.json").read_text())["files"]
    assert {e["seed"] for e in embedded}.isdisjoint(e["seed"] for e in manifest["files"])
    ours = [e["notes"] for e in manifest["files"] if e["instrument"] == "flute"]
    assert all(e["notes"] not in ours for e in embedded if e["instrument"] == "flute")
    # rendering is deterministic, so a second run with the same plan keeps the files
    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/*.flac")}
    assert demo.render_instruments(tmp_path) == manifest
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/*.flac")} == before
