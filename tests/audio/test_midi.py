"""MIDI composition and writing (audiolab.audio.midi) against the committed demo MIDI files and a mido read-back."""

from __future__ import annotations

import mido
import pytest

from audiolab.audio.midi import TEMPO_US, VIOLIN, compose, save_midi_events, write_midi
from audiolab.models.ddsp import demo


def test_demo_midi_bytes_match_the_committed_files(tmp_path):
    counters: dict[str, int] = {}
    for i, (spec, seconds) in enumerate(demo.PLAN):
        k = counters.get(spec.name, 0)
        counters[spec.name] = k + 1
        stem = f"{spec.name}_{k:02d}"
        path = tmp_path / f"{stem}.mid"
        write_midi(compose(spec, seconds, 1000 + i), spec.program, path, 1000 + i)
        assert path.read_bytes() == (demo.HERE / "midi" / f"{stem}.mid").read_bytes(), stem


def test_written_notes_read_back_with_mido(tmp_path):
    notes = compose(VIOLIN, 6.0, seed=7)
    assert notes == compose(VIOLIN, 6.0, seed=7) and notes != compose(VIOLIN, 6.0, seed=8)
    assert all(VIOLIN.low <= n.pitch <= VIOLIN.high and n.end > n.start for n in notes)
    path = tmp_path / "m.mid"
    write_midi(notes, VIOLIN.program, path, seed=7)
    mid = mido.MidiFile(str(path))
    t, on, got = 0.0, {}, []
    for msg in mid.tracks[0]:
        t += mido.tick2second(msg.time, mid.ticks_per_beat, TEMPO_US)
        if msg.type == "program_change":
            assert msg.program == VIOLIN.program
        elif msg.type == "note_on" and msg.velocity > 0:
            on[msg.note] = (t, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            start, vel = on.pop(msg.note)
            got.append((msg.note, start, t, vel))
    tick = mido.tick2second(1, mid.ticks_per_beat, TEMPO_US)
    assert len(got) == len(notes)
    for (pitch, start, end, vel), n in zip(sorted(got, key=lambda g: g[1]), notes):
        assert (pitch, vel) == (n.pitch, n.velocity)
        assert start == pytest.approx(n.start, abs=tick) and end == pytest.approx(n.end, abs=tick)


def test_save_midi_events_orders_note_off_before_note_on(tmp_path):
    events = [(0.5, 1, mido.Message("note_on", note=60, velocity=90)), (0.5, 0, mido.Message("note_off", note=59))]
    path = tmp_path / "e.mid"
    save_midi_events(path, events, program=0)
    kinds = [m.type for m in mido.MidiFile(str(path)).tracks[0] if m.type in ("note_on", "note_off")]
    assert kinds == ["note_off", "note_on"]
