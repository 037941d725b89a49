"""Build a mixed speech + music corpus for codec training from Debian packages installed on this machine.

``python -m audiolab.prepare codec_corpus out_dir=data/codec_corpus [max_per_source=N] [sources=...] [seed=0]
[phrases_per_kind=4]``

Layout written under ``out_dir`` (every file written atomically: temporary file in the same folder, then
``os.replace``)::

    speech/flite_<voice>/<voice>_sNN.wav    # flite voices kal16, awb, rms, slt (16 kHz, mono)
    speech/asterisk/<prompt>.wav           # asterisk core sounds, US English, G.722 decoded with ffmpeg (16 kHz)
    music/fluidsynth/<kind>_NN.wav         # seeded MIDI phrases rendered with FluidR3_GM (24 kHz, mono)
    music/sonicpi/<name>.flac              # sonic-pi loops and a few ambient/guitar samples (44.1 kHz, copied)
    manifest.json                          # one entry per file: source, category, file, seconds, rate, params
    ATTRIBUTION.md                         # licences of every source

Sources (``sources=`` selects a subset, comma-separated; default all):

- ``flite``: the four flite voices built from real recordings (``kal16``, ``awb``, ``rms``, ``slt``), each reading
  :data:`SENTENCES_PER_VOICE` sentences drawn (seeded) from :data:`SENTENCES`, a fixed list of natural sentences
  written for this project. ``flite -voice rms -t "text" -o out.wav``; deterministic.
- ``asterisk``: every prompt of the ``asterisk-core-sounds-en-g722`` voice folder ``en_US_f_Allison``
  (recursive; the ``silence/`` folder and the beep/tone prompts are left out), one professional US English female
  voice. Prompts in sub-folders are flattened (``digits/1.g722`` -> ``digits__1.wav``).
- ``fluidsynth``: :data:`PHRASES_PER_KIND` phrases of 8-10 s for each of piano (GM 0), guitar (24), violin (40),
  cello (42), flute (73) (monophonic legato melodies composed by :func:`audiolab.audio.midi.compose`)
  and a polyphonic piano chord progression, rendered with reverb and chorus off at 24 kHz.
- ``sonicpi``: ``loop_*``, ``ambi_*`` and ``guit_*`` samples, copied unchanged (file names kept).

Every system file, folder and program is found through :mod:`audiolab.data.sources` (``flite``,
``fluidsynth``, ``fluidr3_gm``, ``asterisk_en_g722``, ``sonicpi_samples``, ``ffmpeg``), which names the package
to install when one is missing.

Re-running is fast: files that already exist are kept (they are complete: atomic writes), only missing ones are
made, and the manifest is rewritten. Audio files inside the builder's own source folders that are not part of the
current plan (e.g. after lowering ``max_per_source``) are removed so the folder always matches the manifest.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audiolab.audio.io import AUDIO_EXTENSIONS, save_audio
from audiolab.audio.midi import (
    FLUTE,
    MAJOR,
    VIOLIN,
    InstrumentSpec,
    Note,
    compose,
    render_wav,
    save_midi_events,
    to_mono_trimmed,
    write_midi,
)
from audiolab.data import sources as data_sources
from audiolab.data.cache import atomic_path, atomic_write_bytes, atomic_write_json
from audiolab.data.cli import NULLS, boolean, comma_list, optional, parse_key_values

__all__ = [
    "SOURCES",
    "SENTENCES",
    "FLITE_VOICES",
    "CorpusError",
    "build_corpus",
    "render_flite",
    "decode_g722",
    "main",
]

#: Bumped when the content of the generated files changes.
CORPUS_VERSION = 1
SOURCES: tuple[str, ...] = ("flite", "asterisk", "fluidsynth", "sonicpi")
FLITE_VOICES: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
FLITE_RATE = 16000
SENTENCES_PER_VOICE = 40
ASTERISK_RATE = 16000
#: Asterisk prompts that are not speech (tones and beeps); the ``silence`` folder is skipped as a whole.
ASTERISK_EXCLUDE = frozenset({"beep", "beeperr", "ascending-2tone", "descending-2tone"})
ASTERISK_EXCLUDE_DIRS = frozenset({"silence"})
MIDI_RATE = 24000
PHRASES_PER_KIND = 4

#: Sixty plain English sentences written for this corpus (no third-party text).
SENTENCES: tuple[str, ...] = (
    "The morning train was late again, so we walked to the office along the river.",
    "Please put the blue folder on the second shelf next to the printer.",
    "My grandmother grew tomatoes, beans and sweet peppers in her small garden.",
    "It started to rain just as the concert in the park was about to begin.",
    "Could you tell me how long it takes to drive to the airport from here?",
    "The children built a tall tower out of wooden blocks and then knocked it down.",
    "We need two more chairs before the guests arrive for dinner tonight.",
    "He forgot his umbrella on the bus and had to buy a new one at the station.",
    "The library closes early on Saturdays, so return your books before noon.",
    "A cold wind blew across the harbour and the fishing boats stayed in port.",
    "She practised the piano every evening until the neighbours knew every song.",
    "Turn left at the bakery, then keep going until you see the old stone bridge.",
    "The meeting has been moved to Thursday afternoon at half past three.",
    "Fresh bread, a little butter and a cup of tea make a very good breakfast.",
    "Our team finished the project a week ahead of schedule.",
    "The cat sat on the windowsill and watched the birds in the apple tree.",
    "If the weather is clear tomorrow, we can see the mountains from the hill.",
    "He wrote a long letter to his brother, who lives on the other side of the country.",
    "The museum has a new exhibition about the history of clocks and watches.",
    "Remember to switch off the lights when you leave the room.",
    "The soup needs a pinch more salt and a few minutes longer on the stove.",
    "Most of the shops in the village are closed on Sunday mornings.",
    "They painted the kitchen a bright yellow colour last summer.",
    "I would like a table for four near the window, please.",
    "The river rose quickly after three days of heavy rain in the hills.",
    "Every student must hand in the essay by the end of next week.",
    "The old car made a strange noise whenever it went up a steep hill.",
    "We watched the sun go down behind the islands from the top of the lighthouse.",
    "Her new job starts on Monday, and she is both nervous and excited.",
    "The doctor said that a short walk every day would help him sleep better.",
    "Pack a warm jacket, because the nights in the desert can be very cold.",
    "A small dog ran across the field, chasing a bright red ball.",
    "The price of coffee has gone up twice since the beginning of the year.",
    "Please speak a little more slowly, the line is not very clear.",
    "The farmers brought their vegetables to the market early in the morning.",
    "He fixed the broken fence with a hammer, some nails and a few old boards.",
    "We lost our way in the forest and had to follow the stream back to the road.",
    "The baby finally fell asleep after the third song.",
    "The first snow of winter covered the roofs and the empty streets.",
    "Write your name at the top of the page and answer all of the questions.",
    "The teacher read a story about a sailor who crossed the ocean alone.",
    "Our flight was delayed by two hours because of a storm over the coast.",
    "She keeps a notebook in her pocket to write down new ideas.",
    "The hotel room was small, but it had a wonderful view of the sea.",
    "Bring the plates into the dining room, and I will fetch the glasses.",
    "The engine started on the first try after the mechanic cleaned the spark plugs.",
    "A group of tourists stopped to take pictures of the cathedral.",
    "It is much quieter here now that the road works have finished.",
    "He spent the whole afternoon repairing his bicycle in the garage.",
    "The orchestra tuned their instruments while the audience found their seats.",
    "Do not forget to water the plants while we are away on holiday.",
    "The bridge was closed for repairs, so the bus took a longer route.",
    "They grow rice in the valley and keep sheep on the higher slopes.",
    "The phone rang twice and then stopped before anyone could answer it.",
    "Cut the apples into thin slices and lay them on top of the pastry.",
    "The lecture on ancient maps was more interesting than I expected.",
    "We stayed up late talking about the places we would like to visit.",
    "The wooden floor creaked as he walked slowly across the dark hall.",
    "Thank you for calling, your message will be answered as soon as possible.",
    "At the end of the day, the workers gathered their tools and went home.",
)


class CorpusError(RuntimeError):
    """A tool, package or input needed by the corpus builder is missing; the message says what to install."""


@dataclasses.dataclass
class _Job:
    """One output file of the corpus: ``make(out)`` writes it (atomically) if it does not exist yet."""

    source: str
    category: str
    rel: str  # path relative to out_dir (posix)
    make: Callable[[Path], None]
    params: dict[str, Any]


# -- tools -------------------------------------------------------------------------------------------------------
def _locate(name: str) -> Path:
    """:func:`audiolab.data.sources.locate` with a missing source as a :class:`CorpusError` naming the package."""
    try:
        return data_sources.locate(name)
    except data_sources.SourceMissing as exc:
        raise CorpusError(str(exc)) from None


def _source_files(name: str, globs: tuple[str, ...] | None = None) -> list[Path]:
    try:
        return data_sources.source_files(name, globs)
    except data_sources.SourceMissing as exc:
        raise CorpusError(str(exc)) from None


def _run_to(out: Path, cmd_for: Callable[[Path], list[str]], check_rate: int | None) -> None:
    """Run ``cmd_for(tmp)`` writing a WAV to a temporary file next to ``out``, check it, then rename to ``out``
    (:func:`audiolab.data.cache.atomic_path`: the user's umask mode, no temporary file left on failure)."""
    with atomic_path(out, suffix=".wav") as tmp:
        cmd = cmd_for(tmp)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(f"{out}: {cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        info = sf.info(str(tmp))
        if check_rate is not None and info.samplerate != check_rate:
            raise CorpusError(f"{out}: expected {check_rate} Hz, the tool wrote {info.samplerate} Hz")
        if info.frames == 0:
            raise CorpusError(f"{out}: the tool wrote no samples")


def render_flite(text: str, voice: str, out: str | os.PathLike) -> None:
    """Speak ``text`` with flite ``voice`` into the WAV ``out`` (16 kHz mono PCM_16; atomic write).

    Raises:
        CorpusError: flite is missing, the voice is unknown, or flite wrote no audio / another rate.
    """
    exe = str(_locate("flite"))
    _run_to(Path(out), lambda tmp: [exe, "-voice", voice, "-t", text, "-o", str(tmp)], FLITE_RATE)


def decode_g722(src: str | os.PathLike, out: str | os.PathLike, ffmpeg: str | None = None) -> None:
    """Decode a raw G.722 file to a 16 kHz mono PCM_16 WAV at ``out`` with ffmpeg (atomic write)."""
    exe = ffmpeg or str(_locate("ffmpeg"))
    _run_to(Path(out), lambda tmp: [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "g722",
                                    "-i", str(src), "-f", "wav", "-acodec", "pcm_s16le", str(tmp)], ASTERISK_RATE)


# -- plans -------------------------------------------------------------------------------------------------------
def _limit(items: list, max_per_source: int | None) -> list:
    return items if max_per_source is None else items[: max(0, int(max_per_source))]


def _plan_flite(seed: int, max_per_source: int | None) -> list[_Job]:
    _locate("flite")
    jobs = []
    n = min(SENTENCES_PER_VOICE, len(SENTENCES))
    for v, voice in enumerate(FLITE_VOICES):
        picks = sorted(np.random.default_rng([seed, 17, v]).choice(len(SENTENCES), size=n, replace=False).tolist())
        for idx in _limit(picks, max_per_source):
            text = SENTENCES[idx]
            jobs.append(_Job(
                f"flite_{voice}", "speech", f"speech/flite_{voice}/{voice}_s{idx:02d}.wav",
                lambda out, t=text, vo=voice: render_flite(t, vo, out),
                {"voice": voice, "sentence_index": idx, "text": text, "license": "flite"},
            ))
    return jobs


def _plan_asterisk(max_per_source: int | None) -> list[_Job]:
    asterisk_dir = _locate("asterisk_en_g722")
    src_dir = asterisk_dir.resolve()
    files = sorted(
        src_dir / p.relative_to(asterisk_dir) for p in _source_files("asterisk_en_g722")
        if p.stem not in ASTERISK_EXCLUDE and not (set(p.relative_to(asterisk_dir).parts[:-1]) & ASTERISK_EXCLUDE_DIRS)
    )
    ffmpeg = str(_locate("ffmpeg"))
    jobs = []
    for p in _limit(files, max_per_source):
        rel = p.relative_to(src_dir).with_suffix("").as_posix()
        jobs.append(_Job(
            "asterisk", "speech", f"speech/asterisk/{rel.replace('/', '__')}.wav",
            lambda out, s=p: decode_g722(s, out, ffmpeg),
            {"original": f"{asterisk_dir}/{rel}.g722", "license": "asterisk"},
        ))
    return jobs


def _midi_kinds():
    piano = InstrumentSpec("piano", 0, low=48, high=84, core_low=55, core_high=79, scale_root=0)
    guitar = InstrumentSpec("guitar", 24, low=40, high=76, core_low=45, core_high=69, scale_root=4)
    cello = InstrumentSpec("cello", 42, low=36, high=72, core_low=41, core_high=64, scale_root=2)
    return [piano, guitar, VIOLIN, cello, FLUTE]


# Diatonic chord progressions (scale degrees, 0-based) for the polyphonic piano phrases.
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 4, 5, 3), (1, 4, 0, 0), (0, 2, 3, 4))


def compose_chords(seconds: float, seed: int) -> list:
    """Polyphonic piano phrase of about ``seconds`` s: a diatonic chord progression in a random major key.

    Each bar (1.6-2.4 s) holds a close-position triad in the middle register, a bass note an octave below the
    root and a right-hand line of 2-4 chord/scale tones on top; velocities vary per bar and per note.
    Returns a list of :class:`audiolab.audio.midi.Note` (times in seconds).
    """
    rng = np.random.default_rng(seed)
    key = 48 + int(rng.integers(0, 12))
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    bar = float(rng.uniform(1.6, 2.4))
    notes: list[Note] = []
    t, i = 0.05, 0
    while t < seconds - 0.5:
        deg = prog[i % len(prog)]
        triad = [key + 12 + MAJOR[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)]
        end = min(t + bar, seconds)
        vel = int(rng.integers(55, 100))
        notes.append(Note(triad[0] - 12, round(t, 4), round(end, 4), min(127, vel + 10)))
        for p in triad:
            notes.append(Note(p, round(t, 4), round(end - 0.02, 4), vel))
        n_top = int(rng.integers(2, 5))
        for k in range(n_top):
            a = t + k * bar / n_top
            top = triad[int(rng.integers(3))] + 12 + int(rng.choice([0, 0, 2, -1]))
            notes.append(Note(top, round(a, 4), round(a + bar / n_top, 4), int(np.clip(vel + rng.integers(-10, 15), 30, 127))))
        t += bar
        i += 1
    return notes


def _write_poly_midi(notes: Sequence, program: int, path: Path) -> None:
    """One-track MIDI on channel 0 with ``program``, notes as given (overlaps allowed), no controller curves."""
    import mido


    events = []
    for n in notes:
        events.append((n.start, 1, mido.Message("note_on", note=int(n.pitch), velocity=int(n.velocity))))
        events.append((n.end, 0, mido.Message("note_off", note=int(n.pitch), velocity=0)))
    save_midi_events(path, events, program)


def _render_phrase(out: Path, kind: str, program: int, seconds: float, seed: int, soundfont: Path) -> None:
    """Compose (seeded), write MIDI, render with fluidsynth at 24 kHz, downmix, trim and save ``out`` (atomic)."""
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "phrase.mid"
        if kind == "piano_chords":
            _write_poly_midi(compose_chords(seconds, seed), program, midi)
        else:
            spec = next(s for s in _midi_kinds() if s.name == kind)
            write_midi(compose(spec, seconds, seed), program, midi, seed)
        wav = Path(tmp) / "phrase.wav"
        render_wav(midi, wav, soundfont, sample_rate=MIDI_RATE)
        mono = to_mono_trimmed(wav, sample_rate=MIDI_RATE)
    if float(np.abs(mono).max(initial=0.0)) < 1e-3:
        raise CorpusError(f"{out}: fluidsynth rendered silence (soundfont {soundfont})")
    save_audio(out, mono, MIDI_RATE)


def _plan_fluidsynth(seed: int, max_per_source: int | None, phrases_per_kind: int = PHRASES_PER_KIND,
                     soundfont: Path | None = None) -> list[_Job]:
    _locate("fluidsynth")
    if soundfont is None:
        soundfont = _locate("fluidr3_gm")
    elif not Path(soundfont).is_file():  # fluidsynth silently falls back to another soundfont otherwise
        raise CorpusError(f"soundfont {soundfont} not found: {data_sources.install_hint('fluidr3_gm')}")
    try:
        import mido  # noqa: F401
    except ImportError:
        raise CorpusError("mido not found: pip install mido (pip install -e .)") from None
    kinds = [(s.name, s.program) for s in _midi_kinds()] + [("piano_chords", 0)]
    jobs = []
    for k in range(phrases_per_kind):  # interleaved so that max_per_source keeps every instrument
        for j, (name, program) in enumerate(kinds):
            s = 5000 + 100 * seed + 10 * j + k
            seconds = round(float(np.random.default_rng(s).uniform(8.0, 10.0)), 2)
            jobs.append(_Job(
                "fluidsynth", "music", f"music/fluidsynth/{name}_{k:02d}.wav",
                lambda out, n=name, p=program, sec=seconds, sd=s: _render_phrase(out, n, p, sec, sd, Path(soundfont)),
                {"kind": name, "gm_program": program, "seed": s, "target_seconds": seconds,
                 "soundfont": Path(soundfont).name, "reverb": False, "chorus": False, "license": "fluidr3"},
            ))
    return _limit(jobs, max_per_source)


def _copy_atomic(src: Path, out: Path) -> None:
    atomic_write_bytes(out, src.read_bytes())
    os.utime(out, (src.stat().st_atime, src.stat().st_mtime))


def _plan_sonicpi(max_per_source: int | None) -> list[_Job]:
    _source_files("sonicpi_samples")  # the folder and at least one sample, else the error names the package
    sonicpi_dir = _locate("sonicpi_samples")
    groups = [sorted(sonicpi_dir.glob(pat)) for pat in data_sources.get("sonicpi_samples").globs]
    # Round-robin over the patterns so that a small max_per_source still gets loops, ambiences and guitars.
    files = [g[i] for i in range(max((len(g) for g in groups), default=0)) for g in groups if i < len(g)]
    return [
        _Job("sonicpi", "music", f"music/sonicpi/{p.name}", lambda out, s=p: _copy_atomic(s, out),
             {"original": str(p), "license": "sonicpi"})
        for p in _limit(files, max_per_source)
    ]


# -- build -------------------------------------------------------------------------------------------------------
_SOURCE_DIRS = {"flite": [f"speech/flite_{v}" for v in FLITE_VOICES], "asterisk": ["speech/asterisk"],
                "fluidsynth": ["music/fluidsynth"], "sonicpi": ["music/sonicpi"]}

ATTRIBUTION = """# Attribution — codec corpus

Built by `python -m audiolab.prepare codec_corpus` (src/audiolab/models/codec/corpus.py) from Debian packages.
Not redistributed with audiolab; rebuild it with `make data`.

| folder | origin | licence |
|---|---|---|
| speech/flite_{kal16,awb,rms,slt} | flite speech synthesiser (Debian `flite`), voices built from CMU ARCTIC / CMU recordings; the sentences are written for this project | flite licence (BSD-like, Carnegie Mellon University / Edinburgh); CMU ARCTIC databases: BSD-like, free use |
| speech/asterisk | Asterisk core sound prompts, English (Allison Smith), G.722 (Debian `asterisk-core-sounds-en-g722`), decoded to WAV | CC-BY-SA-3.0, (c) Digium, Inc. — derivative files must keep this licence |
| music/fluidsynth | MIDI phrases composed by this project (seeded), rendered with fluidsynth and the FluidR3_GM soundfont (Debian `fluid-soundfont-gm`) | FluidR3_GM: MIT (Frank Wen); compositions: MIT (audiolab) |
| music/sonicpi | Sonic Pi samples (Debian `sonic-pi-samples`), copied unchanged | CC0 1.0 (see /usr/share/sonic-pi/samples/README.md) |
"""


def _plan(sources: Sequence[str], seed: int, max_per_source: int | None, phrases_per_kind: int) -> list[_Job]:
    planners: dict[str, Callable[[], list[_Job]]] = {
        "flite": lambda: _plan_flite(seed, max_per_source),
        "asterisk": lambda: _plan_asterisk(max_per_source),
        "fluidsynth": lambda: _plan_fluidsynth(seed, max_per_source, phrases_per_kind),
        "sonicpi": lambda: _plan_sonicpi(max_per_source),
    }
    jobs: list[_Job] = []
    for name in sources:
        jobs.extend(planners[name]())
    return jobs


def _remove_stale(out_dir: Path, sources: Sequence[str], keep: set[str]) -> list[str]:
    """Delete audio files in the builder's own folders of ``sources`` that the current plan does not contain."""
    removed = []
    exts = set(AUDIO_EXTENSIONS)
    for name in sources:
        for sub in _SOURCE_DIRS[name]:
            d = out_dir / sub
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                rel = p.relative_to(out_dir).as_posix()
                if p.is_file() and p.suffix.lower() in exts and rel not in keep:
                    p.unlink()
                    removed.append(rel)
    return removed


def build_corpus(
    out_dir: str | os.PathLike = "data/codec_corpus",
    *,
    sources: Sequence[str] = SOURCES,
    max_per_source: int | None = None,
    seed: int = 0,
    phrases_per_kind: int = PHRASES_PER_KIND,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or complete) the corpus under ``out_dir``; returns the manifest (also written to ``manifest.json``).

    Args:
        out_dir: output folder (created).
        sources: subset of :data:`SOURCES`.
        max_per_source: at most this many files per source (per flite voice for ``flite``); ``None`` = all.
        seed: seed of the sentence choice and of the MIDI compositions.
        phrases_per_kind: fluidsynth phrases per instrument kind (6 kinds; raise it for more music).
        progress: tqdm bar over the files.

    Raises:
        CorpusError: a tool, package or input folder is missing (the message names what to install), or a tool
            failed on one file (the message names the file).
        ValueError: unknown source name.
    """
    from tqdm.auto import tqdm

    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown sources {unknown}: choose from {', '.join(SOURCES)}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = _plan(sources, seed, max_per_source, int(phrases_per_kind))
    removed = _remove_stale(out, sources, {j.rel for j in jobs})
    if removed:
        print(f"removed {len(removed)} files no longer in the plan (e.g. {removed[0]})", flush=True)
    made = 0
    entries = []
    for job in tqdm(jobs, desc="codec corpus", unit="file", disable=not progress, dynamic_ncols=True):
        path = out / job.rel
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            job.make(path)
            made += 1
        info = sf.info(str(path))
        entries.append({
            "source": job.source,
            "category": job.category,
            "file": job.rel,
            "seconds": round(info.frames / info.samplerate, 4),
            "sample_rate": int(info.samplerate),
            "channels": int(info.channels),
            "params": job.params,
        })
    summary: dict[str, dict[str, float]] = {}
    for e in entries:
        for key in (e["category"], e["source"]):
            s = summary.setdefault(key, {"files": 0, "minutes": 0.0})
            s["files"] += 1
            s["minutes"] += e["seconds"] / 60.0
    for s in summary.values():
        s["minutes"] = round(s["minutes"], 2)
    manifest = {
        "family": "codec_corpus",
        "version": CORPUS_VERSION,
        "seed": seed,
        "max_per_source": max_per_source,
        "phrases_per_kind": int(phrases_per_kind),
        "sources": list(sources),
        "summary": summary,
        "files": entries,
    }
    atomic_write_bytes(out / "ATTRIBUTION.md", ATTRIBUTION.encode())
    atomic_write_json(out / "manifest.json", manifest)
    dt = time.perf_counter() - t0
    cats = ", ".join(f"{k} {summary[k]['minutes']:.1f} min ({summary[k]['files']} files)"
                     for k in ("speech", "music") if k in summary)
    print(f"codec corpus {out}: {cats}; {made} files made, {len(entries) - made} reused, {dt:.1f} s", flush=True)
    return manifest


# -- CLI -------------------------------------------------------------------------------------------------------
_CLI_KEYS: dict[str, Callable[[str], Any]] = {
    "out_dir": str,
    "max_per_source": optional(int, nulls=(*NULLS, "all")),
    "sources": comma_list,
    "seed": int,
    "phrases_per_kind": int,
    "progress": boolean,
}


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m audiolab.prepare codec_corpus [out_dir=data/codec_corpus] [max_per_source=N|none]
    [sources=flite,asterisk,fluidsynth,sonicpi] [seed=0] [phrases_per_kind=4] [progress=true]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    kwargs = parse_key_values(args, _CLI_KEYS, recipe="codec_corpus")
    try:
        build_corpus(**kwargs)
    except CorpusError as exc:
        raise SystemExit(f"prepare codec_corpus: {exc}") from exc
