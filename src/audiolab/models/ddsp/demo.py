"""Compose and render the embedded DDSP demo data (monophonic violin and flute).

The melodies are composed with :func:`audiolab.audio.midi.compose` (seeded, deterministic), written as standard
MIDI files with ``mido`` and rendered with the ``fluidsynth`` command-line synthesiser and the MIT-licensed
FluidR3_GM soundfont (Debian package ``fluid-soundfont-gm``). The rendered audio is stored as mono 16 kHz 16-bit
FLAC.

Layout written under ``--out`` (default: the embedded demo folder ``audiolab/assets/ddsp_demo``)::

    midi/violin_00.mid ...        # the composed melodies
    audio/violin/violin_00.flac   # default DDSP training data (violin only)
    audio/flute/flute_00.flac     # a second timbre (held-out / transfer demos)
    manifest.json                 # file, instrument, GM program, seconds, MIDI notes

Re-render (needs ``fluidsynth`` and FluidR3_GM.sf2: ``make data`` installs both; :mod:`audiolab.data.sources`)::

    python -m audiolab.models.ddsp.demo            # write everything
    python -m audiolab.models.ddsp.demo --verify   # + pitch check of rendered f0 against the MIDI notes

Rendering is deterministic: a rerun with the same fluidsynth/soundfont gives identical audio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audiolab.audio.midi import (
    FLUTE,
    VIOLIN,
    InstrumentSpec,
    compose,
    render_wav,
    to_mono_trimmed,
    write_midi,
)

SAMPLE_RATE = 16000
HERE = Path(__file__).resolve().parents[2] / "assets" / "ddsp_demo"

# (instrument, target seconds of each file); seeds derive from the index, so the set is reproducible.
PLAN: list[tuple[InstrumentSpec, float]] = [
    (VIOLIN, s) for s in (9.0, 12.0, 8.5, 14.0, 10.0, 11.5, 8.0, 13.0, 9.5, 10.5)
] + [(FLUTE, s) for s in (10.0, 9.0, 11.0)]



def render_all(out: Path = HERE, soundfont: Path | None = None) -> dict:
    """Compose, write MIDI, render and encode every file of :data:`PLAN`; write ``manifest.json``.

    ``soundfont``: default FluidR3_GM (:func:`audiolab.audio.midi.default_soundfont`)."""
    import soundfile as sf

    entries = []
    counters: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (spec, seconds) in enumerate(PLAN):
            k = counters.get(spec.name, 0)
            counters[spec.name] = k + 1
            stem = f"{spec.name}_{k:02d}"
            seed = 1000 + i
            notes = compose(spec, seconds, seed)
            midi_path = out / "midi" / f"{stem}.mid"
            write_midi(notes, spec.program, midi_path, seed)
            wav = Path(tmp) / f"{stem}.wav"
            render_wav(midi_path, wav, soundfont, sample_rate=SAMPLE_RATE)
            mono = to_mono_trimmed(wav, SAMPLE_RATE)
            flac = out / "audio" / spec.name / f"{stem}.flac"
            flac.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(flac), mono, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            entries.append({
                "file": flac.relative_to(out).as_posix(),
                "midi": midi_path.relative_to(out).as_posix(),
                "instrument": spec.name,
                "gm_program": spec.program,
                "sample_rate": SAMPLE_RATE,
                "seconds": round(len(mono) / SAMPLE_RATE, 3),
                "seed": seed,
                "notes": [asdict(n) for n in notes],
            })
            print(f"{flac.relative_to(out)}: {len(mono) / SAMPLE_RATE:.2f} s, {len(notes)} notes")
    manifest = {
        "soundfont": "FluidR3_GM.sf2 (Frank Wen, MIT licence; Debian fluid-soundfont-gm)",
        "render": "fluidsynth -ni -q -g 0.8 -r 16000 -o synth.reverb.active=0 -o synth.chorus.active=0 -F out.wav FluidR3_GM.sf2 in.mid",
        "files": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_pitch(out: Path = HERE, notes_per_file: int = 6, max_files: int | None = None) -> dict[str, float]:
    """Check that the rendered f0 follows the MIDI notes.

    For up to ``notes_per_file`` notes (>= 0.3 s) per file, runs ``librosa.pyin`` on the middle of the note
    and measures the median deviation from the MIDI pitch in cents. Returns summary statistics
    (``median_abs_cents``, ``max_abs_cents``, ``n_notes``) and prints them.
    """
    import librosa
    import soundfile as sf

    manifest = json.loads((out / "manifest.json").read_text())
    devs = []
    for entry in manifest["files"][:max_files]:
        audio, sr = sf.read(str(out / entry["file"]), dtype="float32")
        long_notes = [n for n in entry["notes"] if n["end"] - n["start"] >= 0.3][:notes_per_file]
        for n in long_notes:
            a, b = int((n["start"] + 0.08) * sr), int((n["end"] - 0.05) * sr)
            seg = audio[a:b]
            f_ref = librosa.midi_to_hz(n["pitch"])
            f0, voiced, _ = librosa.pyin(seg, fmin=f_ref / 1.5, fmax=f_ref * 1.5, sr=sr, frame_length=1024, hop_length=128)
            f0 = f0[voiced & np.isfinite(f0)]
            if len(f0) == 0:
                devs.append(float("inf"))
                continue
            devs.append(float(np.median(1200 * np.log2(f0 / f_ref))))
    d = np.abs(np.array(devs))
    stats = {"median_abs_cents": float(np.median(d)), "max_abs_cents": float(d.max()), "n_notes": int(len(d)),
             "within_50_cents": float(np.mean(d < 50))}
    print(json.dumps(stats))
    return stats


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m audiolab.models.ddsp.demo [--out DIR] [--soundfont SF2] [--verify]``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--soundfont", type=Path, default=None, help="default: FluidR3_GM.sf2 (fluid-soundfont-gm)")
    p.add_argument("--verify", action="store_true", help="pitch-check the renders against the MIDI notes")
    p.add_argument("--verify-only", action="store_true", help="only run the pitch check")
    args = p.parse_args(argv)
    if not args.verify_only:
        render_all(args.out, args.soundfont)
    if args.verify or args.verify_only:
        verify_pitch(args.out)


if __name__ == "__main__":
    main()
