"""Build the TSE speaker corpus (one folder per speaker) from the Debian packages ``make data`` installs.

``python -m audiolab.prepare tse_corpus [out_dir=data/tse_corpus] [sources=flite,festival,asterisk,ktuberling]
[utterances_per_voice=40] [seed=0] [progress=true]``

Layout written under ``out_dir`` (every file written atomically)::

    <speaker>/<voice>_<NNN>.flac     # one first-level folder per *person* (split unit), e.g. kal/flite_kal16_003.flac
    manifest.json                    # speakers (kind, voices, packages) and utterances (speaker, role, text/words, rate)
    ATTRIBUTION.md                   # where every voice comes from and its licence file

Speakers (a *speaker* is a person: two synthesisers built from the same recordings share one folder, so a
speaker-disjoint split never puts the same voice on both sides):

- ``flite`` (package ``flite``): ``kal16`` (speaker ``kal``), ``awb``, ``rms``, ``slt`` — voices built from real
  recordings; each reads ``utterances_per_voice`` sentences of 6-10 random dictionary words (``wamerican``; random
  rare words so two sentences almost never share a word: a diphone synthesiser renders a repeated word nearly
  identically, and a shared word between enrollment and mixture would let a model match waveforms).
- ``festival`` (``festival`` + ``festvox-*``): the voice name is the name of each package's voice folder as
  registered in :mod:`audiolab.data.sources` (``festival/voices/<language>/<voice>``); ``kal_diphone`` joins speaker
  ``kal`` and ``cmu_us_slt_arctic_hts`` joins ``slt``. Non-English voices read the same English word lists with their own
  letter-to-sound rules (their identity is what matters here). ``text2wave -eval "(voice_<name>)"``.
- ``asterisk`` (``asterisk-core-sounds-en-g722``): every prompt of the package's g722 folder (the registered
  source ``asterisk_en_g722``), one professional female voice (speaker ``allison``), 16 kHz after G.722 decoding.
- ``ktuberling`` (``ktuberling-data``): one voice per language folder (inferred; the package does not document
  speakers) of isolated words, 8-48 kHz; language variants with identical files (the four Serbian folders) are one
  speaker. Utterances are 3-6 words joined with 60-250 ms gaps, each word RMS-normalised. The words of a speaker
  are split once (seeded) into a *mixture* pool (70 %) and an *enrollment* pool (30 %): utterances built from the
  second are marked ``role: enroll`` and are the only ones used as enrollments, so an enrollment never contains a
  recording that also occurs in a mixture.

TTS sentences and asterisk prompts have ``role: any`` (any other utterance of the speaker may be the enrollment).
espeak-ng is not a source here (formant synthesis: plumbing only, used by the unit tests' synthetic speakers).

Re-running keeps existing files (atomic writes, so they are complete) and rewrites the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audiolab.audio.speech import CorpusError, decode_g722, locate_tool, render_flite
from audiolab.data import sources as data_sources
from audiolab.data.cache import atomic_write_bytes, atomic_write_json
from audiolab.data.cli import boolean, comma_list, parse_key_values

__all__ = ["SOURCES", "build_tse_corpus", "build_synthetic_corpus", "synth_utterance", "random_sentence", "main",
           "CorpusError"]

CORPUS_VERSION = 1
SOURCES: tuple[str, ...] = ("flite", "festival", "asterisk", "ktuberling")
#: flite voice -> speaker (person). ``kal`` and ``kal16`` are the same diphone database; ``kal16`` is the 16 kHz one.
FLITE_SPEAKERS: dict[str, str] = {"kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
#: festival package -> speaker. The voice name itself is read from the package's file list.
FESTIVAL_PACKAGES: dict[str, str] = {
    "festvox-kallpc16k": "kal", "festvox-kdlpc16k": "ked", "festvox-us-slt-hts": "slt",
    "festvox-italp16k": "it_lp", "festvox-itapc16k": "it_pc",
    "festvox-czech-dita": "cs_dita", "festvox-czech-krb": "cs_krb", "festvox-czech-machac": "cs_machac",
    "festvox-czech-ph": "cs_ph", "festvox-suopuhe-lj": "fi_lj", "festvox-suopuhe-mv": "fi_mv",
    "festvox-ca-ona-hts": "ca_ona",
}
ASTERISK_EXCLUDE = frozenset({"beep", "beeperr", "ascending-2tone", "descending-2tone"})
WORDS_PER_SENTENCE = (6, 10)
WORDS_PER_UTTERANCE = (3, 6)
ENROLL_POOL_FRACTION = 0.3


@dataclasses.dataclass
class _Job:
    speaker: str
    kind: str  # tts | words | prompts
    voice: str
    rel: str
    role: str  # any | mix | enroll
    make: Callable[[Path], None]
    params: dict[str, Any]


# -- sources (audiolab.data.sources: every path a builder reads, with the package that installs it) ---------------
def _source_files(name: str) -> list[Path]:
    try:
        return data_sources.source_files(name)
    except data_sources.SourceMissing as exc:
        raise CorpusError(str(exc)) from None


def _festival_voice(package: str) -> str:
    """The festival voice a ``festvox-*`` package installs: the name of its registered voice folder."""
    return locate_tool(f"festvox_{package.removeprefix('festvox-').replace('-', '_')}").name


def _wordlist() -> list[str]:
    words = []
    for line in locate_tool("wordlist").read_text(encoding="utf-8", errors="ignore").splitlines():
        w = line.strip()
        if w.isascii() and w.isalpha() and w.islower() and 4 <= len(w) <= 10:
            words.append(w)
    return sorted(set(words))


def random_sentence(words: Sequence[str], rng: np.random.Generator) -> str:
    """6-10 distinct random words from ``words`` joined into one lower-case sentence with a full stop."""
    n = int(rng.integers(WORDS_PER_SENTENCE[0], WORDS_PER_SENTENCE[1] + 1))
    picks = rng.choice(len(words), size=n, replace=False)
    return " ".join(words[i] for i in picks) + "."


# -- renderers ---------------------------------------------------------------------------------------------------
def _to_flac(wav: Path, out: Path) -> None:
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if audio.shape[0] == 0 or not np.isfinite(audio).all():
        raise CorpusError(f"{out}: the tool wrote no usable samples")
    _write_flac(out, audio.mean(axis=1), sr)


def _write_flac(out: Path, audio: np.ndarray, sr: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".flac", dir=str(out.parent))
    os.close(fd)
    try:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), int(sr), subtype="PCM_16", format="FLAC")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _render_flite(text: str, voice: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "x.wav"
        render_flite(text, voice, wav)
        _to_flac(wav, out)


def _render_festival(text: str, voice: str, out: Path) -> None:
    exe = str(locate_tool("text2wave"))
    with tempfile.TemporaryDirectory() as d:
        txt, wav = Path(d) / "x.txt", Path(d) / "x.wav"
        txt.write_text(text + "\n")
        # text2wave, not SayText: batch synthesis without opening an audio device
        proc = subprocess.run([exe, "-eval", f"(voice_{voice})", str(txt), "-o", str(wav)], capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            raise CorpusError(f"{out}: text2wave voice {voice} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
        _to_flac(wav, out)


def _decode_g722(src: Path, ffmpeg: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "x.wav"
        decode_g722(src, wav, ffmpeg)
        _to_flac(wav, out)


def _load_word(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def _join_words(paths: Sequence[Path], seed: int, out: Path) -> None:
    """Concatenate word recordings (resampled to the highest rate among them, RMS-normalised to -23 dBFS) with
    random 60-250 ms gaps and 50 ms of silence at both ends."""
    import torch
    import torchaudio

    words = [_load_word(p) for p in paths]
    sr = max(s for _, s in words)
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(0.05 * sr), np.float32)]
    for i, (w, s) in enumerate(words):
        if s != sr:
            w = torchaudio.functional.resample(torch.from_numpy(w), s, sr).numpy()
        rms = float(np.sqrt(np.mean(w.astype(np.float64) ** 2)) + 1e-9)
        w = w * (10 ** (-23 / 20) / rms)
        pieces.append(w.astype(np.float32))
        if i < len(words) - 1:
            pieces.append(np.zeros(int(rng.uniform(0.06, 0.25) * sr), np.float32))
    pieces.append(np.zeros(int(0.05 * sr), np.float32))
    audio = np.concatenate(pieces)
    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    _write_flac(out, audio, sr)


# -- plans -------------------------------------------------------------------------------------------------------
def _plan_tts(sources: Sequence[str], n: int, seed: int) -> list[_Job]:
    words = _wordlist()
    jobs: list[_Job] = []
    voices: list[tuple[str, str, str, Callable[[str, str, Path], None]]] = []
    if "flite" in sources:
        locate_tool("flite")
        voices += [(f"flite_{v}", spk, v, _render_flite) for v, spk in FLITE_SPEAKERS.items()]
    if "festival" in sources:
        locate_tool("text2wave")
        for pkg, spk in FESTIVAL_PACKAGES.items():
            voice = _festival_voice(pkg)
            voices.append((f"festival_{voice}", spk, voice, _render_festival))
    for name, spk, voice, render in voices:
        rng = np.random.default_rng([seed, 101, int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)])
        for k in range(n):
            text = random_sentence(words, rng)
            jobs.append(_Job(spk, "tts", name, f"{spk}/{name}_{k:03d}.flac", "any",
                             lambda out, t=text, vo=voice, r=render: r(t, vo, out),
                             {"text": text, "voice": voice, "index": k}))
    return jobs


def _plan_asterisk() -> list[_Job]:
    files = sorted(p for p in _source_files("asterisk_en_g722")
                   if p.stem not in ASTERISK_EXCLUDE and "silence" not in p.parts)
    ffmpeg = str(locate_tool("ffmpeg"))
    jobs = []
    for p in files:
        jobs.append(_Job("allison", "prompts", "asterisk", f"allison/asterisk_{p.stem}.flac", "any",
                         lambda out, s=p: _decode_g722(s, ffmpeg, out), {"original": str(p)}))
    return jobs


def _plan_ktuberling(n: int, seed: int) -> list[_Job]:
    by_lang: dict[str, list[Path]] = {}
    for p in _source_files("ktuberling_sounds"):  # <sounds>/<language>/<word>.{ogg,wav,opus}
        by_lang.setdefault(p.parent.name, []).append(p)
    # language variants that ship the very same recordings (sr, sr@latin, ...) are one speaker
    seen: dict[str, str] = {}
    jobs: list[_Job] = []
    for lang in sorted(by_lang, key=lambda x: (len(x), x)):
        files = sorted(by_lang[lang])
        digest = hashlib.sha1(b"".join(hashlib.sha1(f.read_bytes()).digest() for f in files)).hexdigest()
        if digest in seen:
            continue
        seen[digest] = lang
        spk = "ktu_" + lang.replace("@", "_")
        rng = np.random.default_rng([seed, 202, int(digest[:8], 16)])
        order = rng.permutation(len(files))
        n_enroll = max(2, int(round(ENROLL_POOL_FRACTION * len(files))))
        pools = {"enroll": [files[i] for i in order[:n_enroll]], "mix": [files[i] for i in order[n_enroll:]]}
        n_enroll_utts = max(4, int(round(ENROLL_POOL_FRACTION * n)))
        for k in range(n):
            role = "enroll" if k < n_enroll_utts else "mix"
            pool = pools[role]
            m = int(rng.integers(WORDS_PER_UTTERANCE[0], WORDS_PER_UTTERANCE[1] + 1))
            picks = [pool[i] for i in rng.choice(len(pool), size=min(m, len(pool)), replace=False)]
            useed = int(rng.integers(2**31))
            jobs.append(_Job(spk, "words", f"ktuberling_{lang}", f"{spk}/ktuberling_{k:03d}.flac", role,
                             lambda out, ps=tuple(picks), s=useed: _join_words(ps, s, out),
                             {"words": [p.stem for p in picks], "language": lang, "index": k}))
    return jobs


ATTRIBUTION = """# Attribution — TSE speaker corpus

Generated on this machine by `python -m audiolab.prepare tse_corpus` from Debian packages; not redistributed by
audiolab. Each package's licence is its Debian copyright file (`dpkg -L <package> | grep copyright`):

- flite voices (kal16, awb, rms, slt): package `flite` (BSD-style, CMU / Edinburgh voice databases).
- festival voices: `festival` + `festvox-kallpc16k`, `festvox-kdlpc16k`, `festvox-us-slt-hts`, `festvox-italp16k`,
  `festvox-itapc16k`, `festvox-czech-{dita,krb,machac,ph}`, `festvox-suopuhe-{lj,mv}`, `festvox-ca-ona-hts`.
- asterisk prompts (Allison Smith): `asterisk-core-sounds-en-g722`, CC-BY-SA-3.0.
- isolated words (23 languages, one voice each): `ktuberling-data`, GPL-2+.
- sentence text: random words from `wamerican` (public domain word list).
"""


def build_tse_corpus(
    out_dir: str | os.PathLike = "data/tse_corpus",
    *,
    sources: Sequence[str] = SOURCES,
    utterances_per_voice: int = 40,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or complete) the speaker corpus under ``out_dir``; returns the manifest (also ``manifest.json``).

    Args:
        out_dir: output folder (created).
        sources: subset of :data:`SOURCES`.
        utterances_per_voice: sentences per TTS voice and utterances per ktuberling speaker (asterisk: all prompts).
        seed: seed of the sentence texts, the word pools and the word joins.
        progress: tqdm bar.

    Raises:
        CorpusError: a package or tool is missing (the message names what to install) or a tool failed on a file.
        ValueError: unknown source, or ``utterances_per_voice < 2``.
    """
    from tqdm.auto import tqdm

    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown sources {unknown}: choose from {', '.join(SOURCES)}")
    if int(utterances_per_voice) < 2:
        raise ValueError(f"utterances_per_voice must be >= 2 (a target and a different enrollment), got {utterances_per_voice}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs: list[_Job] = []
    if "flite" in sources or "festival" in sources:
        jobs += _plan_tts(sources, int(utterances_per_voice), seed)
    if "asterisk" in sources:
        jobs += _plan_asterisk()
    if "ktuberling" in sources:
        jobs += _plan_ktuberling(int(utterances_per_voice), seed)
    made = 0
    utterances = []
    for job in tqdm(jobs, desc="tse corpus", unit="file", disable=not progress, dynamic_ncols=True):
        path = out / job.rel
        if not path.is_file():
            job.make(path)
            made += 1
        info = sf.info(str(path))
        utterances.append({"file": job.rel, "speaker": job.speaker, "voice": job.voice, "role": job.role,
                           "seconds": round(info.frames / info.samplerate, 4), "sample_rate": int(info.samplerate),
                           **job.params})
    speakers: dict[str, dict[str, Any]] = {}
    for job, u in zip(jobs, utterances):
        s = speakers.setdefault(job.speaker, {"kind": job.kind, "voices": [], "utterances": 0, "minutes": 0.0})
        if job.voice not in s["voices"]:
            s["voices"].append(job.voice)
        s["utterances"] += 1
        s["minutes"] = round(s["minutes"] + u["seconds"] / 60.0, 3)
    manifest = {"family": "tse_corpus", "version": CORPUS_VERSION, "seed": seed, "sources": list(sources),
                "utterances_per_voice": int(utterances_per_voice), "speakers": speakers, "utterances": utterances}
    atomic_write_bytes(out / "ATTRIBUTION.md", ATTRIBUTION.encode())
    atomic_write_json(out / "manifest.json", manifest)
    minutes = sum(s["minutes"] for s in speakers.values())
    print(f"tse corpus {out}: {len(speakers)} speakers, {len(utterances)} utterances, {minutes:.1f} min; "
          f"{made} files made, {len(utterances) - made} reused, {time.perf_counter() - t0:.1f} s", flush=True)
    return manifest


# -- synthetic speakers (tests, debug=fast: no packages needed) ----------------------------------------------------
def synth_utterance(f0: float, formants: Sequence[float], seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """A speech-like test signal: harmonics of a slowly moving ``f0`` (Hz) shaped by Gaussian ``formants`` (Hz),
    cut into 120-300 ms 'syllables' with pauses; RMS 0.1, float32 ``[round(seconds * sr)]``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.zeros(n)
    for h in range(1, int(0.45 * sr / f0)):
        amp = sum(np.exp(-((h * f0 - fc) ** 2) / (2 * (0.12 * fc) ** 2)) for fc in formants) + 0.02
        x += amp * np.sin(h * phase) / h**0.5
    env = np.zeros(n)
    pos = int(0.05 * sr)
    while pos < n:
        d = int(rng.uniform(0.12, 0.3) * sr)
        m = max(0, min(d, n - pos))
        env[pos : pos + m] = np.hanning(m + 2)[1:-1]
        pos += d + int(rng.uniform(0.03, 0.15) * sr)
    x = x * env
    return (0.1 * x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def build_synthetic_corpus(out_dir: str | os.PathLike, n_speakers: int = 16, n_utterances: int = 4,
                           seconds: float = 2.5, sample_rate: int = 16000, seed: int = 0) -> Path:
    """A speaker-folder corpus of :func:`synth_utterance` voices (distinct f0 90-260 Hz and formant pairs), with
    the same ``manifest.json`` layout as :func:`build_tse_corpus` (all ``kind: tts``, ``role: any``). Written once
    (a complete ``manifest.json`` marks it done)."""
    out = Path(out_dir).expanduser()
    if (out / "manifest.json").is_file():
        return out
    rng = np.random.default_rng([seed, 404])
    utterances, speakers = [], {}
    for s in range(int(n_speakers)):
        name = f"synth_{s:02d}"
        f0 = 90.0 + 170.0 * s / max(1, n_speakers - 1)
        formants = (float(rng.uniform(300, 900)), float(rng.uniform(1000, 2800)))
        for k in range(int(n_utterances)):
            rel = f"{name}/u{k:02d}.flac"
            x = synth_utterance(f0, formants, seconds + 0.3 * (k % 3), seed=1000 * s + k, sr=sample_rate)
            _write_flac(out / rel, x, sample_rate)
            utterances.append({"file": rel, "speaker": name, "voice": "synthetic", "role": "any",
                               "seconds": round(len(x) / sample_rate, 4), "sample_rate": sample_rate})
        speakers[name] = {"kind": "tts", "voices": ["synthetic"], "utterances": int(n_utterances),
                          "f0_hz": round(f0, 1), "formants_hz": [round(f, 1) for f in formants]}
    atomic_write_json(out / "manifest.json", {"family": "tse_corpus", "version": CORPUS_VERSION, "synthetic": True,
                                              "speakers": speakers, "utterances": utterances})
    return out


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m audiolab.prepare tse_corpus [out_dir=data/tse_corpus] [sources=a,b] [utterances_per_voice=40]
    [seed=0] [progress=true]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    kwargs = parse_key_values(args, {"out_dir": str, "sources": comma_list, "utterances_per_voice": int, "seed": int,
                                     "progress": boolean}, recipe="tse_corpus")
    try:
        build_tse_corpus(**kwargs)
    except CorpusError as exc:
        raise SystemExit(f"prepare tse_corpus: {exc}") from exc
