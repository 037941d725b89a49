"""The offline music set: seeded grooves, music21 melodies with every note closed, a tiny render (fluidsynth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audiolab.models.tokenlm.music_set import (
    DRUM_CHANNEL,
    build_music_set,
    compose_groove,
    melody_events,
    tune_paths,
)


def _balanced(events) -> bool:
    on: dict[int, int] = {}
    for _, _, m in sorted(events, key=lambda e: (e[0], e[1])):
        if m.type == "note_on" and m.velocity > 0:
            on[m.note] = on.get(m.note, 0) + 1
        elif m.type in ("note_on", "note_off"):
            on[m.note] = max(0, on.get(m.note, 0) - 1)
    return all(v == 0 for v in on.values())


def test_groove_is_seeded_and_on_the_drum_channel():
    bpm, a = compose_groove(4.0, seed=3)
    _, b = compose_groove(4.0, seed=3)
    _, c = compose_groove(4.0, seed=4)
    key = lambda ev: [(round(t, 6), m.type, m.note, m.velocity) for t, _, m in ev]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)
    assert 80 <= bpm <= 140 and all(m.channel == DRUM_CHANNEL for _, _, m in a)
    assert max(t for t, _, _ in a) < 4.2 and _balanced(a)


def test_melody_events_close_every_note():
    pytest.importorskip("music21")
    path = tune_paths(1, seed=0)[0]
    ev = melody_events(Path(path), seconds=3.0, tempo_scale=1.1)
    assert len(ev) > 4 and all(0 <= t <= 3.0 for t, _, _ in ev)
    assert _balanced(ev)  # a note held over the cut would make fluidsynth render forever


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(),
                    reason="needs fluidsynth + fluid-soundfont-gm (make data)")
def test_tiny_build_and_rerun(tmp_path):
    pytest.importorskip("music21")
    audio = build_music_set(tmp_path / "set", melodies=1, grooves=1, seconds=2.0, sonicpi=False, progress=False)
    wavs = sorted(p.relative_to(audio).as_posix() for p in audio.rglob("*.wav"))
    assert len(wavs) == 2 and wavs[0].startswith("melodic/piano/") and wavs[1] == "percussive/standard/groove_00.wav"
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert [e["file"] for e in manifest["files"]] == [wavs[0], wavs[1]]
    assert all(1.6 <= e["seconds"] <= 2.0 for e in manifest["files"])
    mtimes = {p: p.stat().st_mtime_ns for p in audio.rglob("*.wav")}
    build_music_set(tmp_path / "set", melodies=1, grooves=1, seconds=2.0, sonicpi=False, progress=False)
    assert {p: p.stat().st_mtime_ns for p in audio.rglob("*.wav")} == mtimes  # finished files are kept
