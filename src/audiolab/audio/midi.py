"""MIDI melodies rendered to audio: composition, MIDI writing (``mido``) and ``fluidsynth`` rendering.

Used by every family that synthesises training audio from MIDI: the embedded DDSP demo
(:mod:`audiolab.models.ddsp.demo`) and the codec corpus (:mod:`audiolab.models.codec.corpus`).

* :func:`compose`: a seeded monophonic legato melody (:class:`Note` list) for an :class:`InstrumentSpec`
  (presets :data:`VIOLIN`, :data:`FLUTE`, :data:`CELLO`, :data:`TRUMPET`).
* :func:`write_midi` (melody + CC11 expression) / :func:`save_midi_events` (any event list): one-track MIDI.
* :func:`render_wav`: the ``fluidsynth`` CLI with the MIT-licensed FluidR3_GM soundfont (Debian
  ``fluid-soundfont-gm``; both found through :mod:`audiolab.data.sources`), reverb and chorus off; :func:`to_mono_trimmed`: downmix, fixed make-up gain, trim.

Rendering is deterministic: a rerun with the same fluidsynth/soundfont gives identical audio.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TICKS_PER_BEAT = 480
TEMPO_US = 500_000  # 120 bpm: one beat = 0.5 s
# Fixed make-up gain (+12 dB) applied to every render: fluidsynth at -g 0.8 peaks around 0.1-0.2 for a single
# voice. One constant for all files keeps the relative dynamics between files intact.
MAKEUP_GAIN = 4.0


@dataclass(frozen=True)
class Note:
    """One MIDI note. ``start``/``end`` in seconds, ``pitch`` MIDI number, ``velocity`` 1..127."""

    pitch: int
    start: float
    end: float
    velocity: int


@dataclass(frozen=True)
class InstrumentSpec:
    """Composition settings of one instrument (pitches are MIDI numbers)."""

    name: str
    program: int  # General MIDI program, 0-based (violin 40, flute 73)
    low: int  # absolute lowest pitch
    high: int  # absolute highest pitch
    core_low: int  # most phrases stay within [core_low, core_high]
    core_high: int
    scale_root: int  # pitch class of the tonic (0 = C)


VIOLIN = InstrumentSpec("violin", 40, low=55, high=88, core_low=57, core_high=81, scale_root=2)  # G3-E6, A3-A5
FLUTE = InstrumentSpec("flute", 73, low=60, high=84, core_low=62, core_high=81, scale_root=7)  # C4-C6
CELLO = InstrumentSpec("cello", 42, low=36, high=76, core_low=43, core_high=67, scale_root=0)  # C2-E5, G2-G4
TRUMPET = InstrumentSpec("trumpet", 56, low=54, high=82, core_low=58, core_high=77, scale_root=10)  # F#3-A#5

DURATIONS = np.array([0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5])
DURATION_WEIGHTS = np.array([4, 5, 6, 6, 7, 7, 5, 4, 3, 2, 1], dtype=float)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def _scale_pitches(root: int, mode: tuple[int, ...], low: int, high: int) -> np.ndarray:
    """All pitches of the scale (``root`` pitch class, ``mode`` intervals) within [low, high]."""
    return np.array([p for p in range(low, high + 1) if (p - root) % 12 in mode])


def compose(spec: InstrumentSpec, seconds: float, seed: int) -> list[Note]:
    """Compose a monophonic legato melody of about ``seconds`` seconds.

    Phrases of 3-9 notes; notes inside a phrase are legato (each ends where the next starts), with
    durations 0.15-1.5 s; phrases are separated by 0.15-0.6 s rests. Pitch is a random walk on a major or
    minor scale (mostly steps, some leaps), kept in the instrument's core range with occasional excursions
    to its extremes. Velocity varies per phrase and per note.
    """
    rng = np.random.default_rng(seed)
    mode = MAJOR if rng.random() < 0.6 else MINOR
    root = (spec.scale_root + int(rng.choice([0, 5, 7]))) % 12
    notes: list[Note] = []
    t = 0.05
    probs = DURATION_WEIGHTS / DURATION_WEIGHTS.sum()
    while t < seconds - 0.5:
        # Occasional phrase in the extreme registers, else the core range.
        r = rng.random()
        if r < 0.12:
            lo, hi = spec.core_high - 5, spec.high
        elif r < 0.2:
            lo, hi = spec.low, spec.core_low + 7
        else:
            lo, hi = spec.core_low, spec.core_high
        scale = _scale_pitches(root, mode, lo, hi)
        idx = int(rng.integers(len(scale) // 4, 3 * len(scale) // 4 + 1))
        phrase_vel = int(rng.integers(50, 111))
        n_notes = int(rng.integers(3, 10))
        for k in range(n_notes):
            dur = float(rng.choice(DURATIONS, p=probs))
            if k == n_notes - 1:
                dur = max(dur, float(rng.choice([0.6, 0.75, 1.0, 1.25, 1.5])))
            dur = min(dur, max(seconds - t, 0.15))
            vel = int(np.clip(phrase_vel + rng.integers(-12, 13), 30, 127))
            notes.append(Note(int(scale[idx]), round(t, 4), round(t + dur, 4), vel))
            t += dur
            step = int(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4, 0], p=[0.03, 0.07, 0.15, 0.25, 0.25, 0.15, 0.05, 0.03, 0.02]))
            idx = int(np.clip(idx + step, 0, len(scale) - 1))
            if t >= seconds:
                break
        t += float(rng.uniform(0.15, 0.6))  # rest between phrases
    return notes


def _expression_curve(rng: np.random.Generator, n: int) -> np.ndarray:
    """CC11 values (0..127) for ``n`` control points across one note: swell, fade, arch or flat."""
    x = np.linspace(0.0, 1.0, n)
    kind = rng.choice(["cresc", "dim", "arch", "flat"], p=[0.3, 0.25, 0.3, 0.15])
    lo, hi = float(rng.uniform(55, 85)), float(rng.uniform(100, 127))
    if kind == "cresc":
        y = lo + (hi - lo) * x
    elif kind == "dim":
        y = hi - (hi - lo) * x
    elif kind == "arch":
        y = lo + (hi - lo) * np.sin(np.pi * x)
    else:
        y = np.full(n, (lo + hi) / 2)
    return np.clip(np.round(y), 0, 127).astype(int)


def write_midi(notes: list[Note], program: int, path: Path, seed: int) -> None:
    """Write ``notes`` as a one-track MIDI file on channel 0 with ``program`` and CC11 expression swells.

    Notes of at least 0.3 s get a CC11 curve (every ~30 ms); shorter notes inherit the previous value.
    """
    import mido

    rng = np.random.default_rng(seed + 10_000)
    events: list[tuple[float, int, mido.Message]] = []  # (seconds, order, message); note_off before note_on
    for n in notes:
        if n.end - n.start >= 0.3:
            k = max(int((n.end - n.start) / 0.03), 2)
            for i, v in enumerate(_expression_curve(rng, k)):
                events.append((n.start + i * (n.end - n.start) / k, 1, mido.Message("control_change", control=11, value=int(v))))
        events.append((n.start, 2, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((n.end, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    save_midi_events(path, events, program, initial_controls=((7, 100), (11, 100)))


def save_midi_events(path: Path, events: list, program: int, initial_controls=((7, 100),)) -> None:
    """One-track MIDI on channel 0: tempo, ``program``, the ``(control, value)`` pairs at time 0, then ``events``
    (``(seconds, order, mido message)``, sorted by time then order: note_off before note_on at the same time)."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    for control, value in initial_controls:
        track.append(mido.Message("control_change", control=control, value=value, time=0))
    last_tick = 0
    for sec, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        tick = int(round(mido.second2tick(sec, TICKS_PER_BEAT, TEMPO_US)))
        track.append(msg.copy(time=tick - last_tick))
        last_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))


def default_soundfont() -> Path:
    """FluidR3_GM.sf2 of the Debian package ``fluid-soundfont-gm`` (:mod:`audiolab.data.sources` entry
    ``fluidr3_gm``); raises :class:`audiolab.data.sources.SourceMissing` naming the package if it is absent."""
    from audiolab.data.sources import locate

    return locate("fluidr3_gm")


def render_wav(midi_path: Path, wav_path: Path, soundfont: Path | None = None, *, sample_rate: int) -> None:
    """Render ``midi_path`` to ``wav_path`` at ``sample_rate`` Hz with the fluidsynth CLI (no reverb/chorus, gain 0.8).

    ``soundfont`` defaults to :func:`default_soundfont`. Raises FileNotFoundError (``SourceMissing``, naming the
    package) if the soundfont or the fluidsynth binary is missing (fluidsynth would silently fall back to another
    soundfont otherwise).
    """
    from audiolab.data.sources import install_hint, locate

    if soundfont is None:
        soundfont = default_soundfont()
    elif not Path(soundfont).is_file():
        raise FileNotFoundError(f"soundfont not found: {soundfont} ({install_hint('fluidr3_gm')})")
    exe = str(locate("fluidsynth"))
    cmd = [exe, "-ni", "-q", "-g", "0.8", "-r", str(sample_rate), "-o", "synth.reverb.active=0",
           "-o", "synth.chorus.active=0", "-F", str(wav_path), str(soundfont), str(midi_path)]
    subprocess.run(cmd, check=True, capture_output=True)


def to_mono_trimmed(wav_path: Path, sample_rate: int, threshold_db: float = -60.0,
                    tail_seconds: float = 0.1, gain: float = MAKEUP_GAIN) -> np.ndarray:
    """Load the rendered WAV, downmix to mono float32 [T], apply ``gain`` and cut the trailing silence.

    Everything after the last sample above ``threshold_db`` dBFS (after the gain) plus ``tail_seconds`` is
    removed. Audio is scaled down further only if it would clip (peak > 0.99).
    """
    import soundfile as sf

    audio, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"{wav_path}: fluidsynth wrote {sr} Hz, expected {sample_rate}")
    mono = audio.mean(axis=1) * gain
    loud = np.flatnonzero(np.abs(mono) > 10 ** (threshold_db / 20))
    end = len(mono) if len(loud) == 0 else min(len(mono), int(loud[-1]) + int(tail_seconds * sample_rate))
    mono = mono[:end]
    peak = float(np.abs(mono).max()) if len(mono) else 0.0
    if peak > 0.99:
        mono = mono * (0.99 / peak)
    return mono.astype(np.float32)
