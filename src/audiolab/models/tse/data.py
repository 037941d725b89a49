"""On-the-fly TSE mixtures from a speaker-folder corpus, with seeded validation/test manifests.

Corpus: a folder with one first-level sub-folder per speaker (``python -m audiolab.prepare tse_corpus`` builds
``data/tse_corpus`` from Debian packages; its ``manifest.json`` marks which utterances may be enrollments). Audio is
resampled once to ``sample_rate`` into the shared content-addressed cache (:func:`audiolab.data.crops.prepare_audio_cache`:
one memory-mapped array, per-file offsets).

Split: **by speaker** (speaker-disjoint train/val/test; within each speaker *kind* — TTS voices, word recordings,
prompts — so every split holds every kind; a kind with fewer than 3 speakers trains only). Written to
``<cache>/tse_splits/<key>.json``.

A mixture (a *recipe*: a plain dict holding every random draw, :meth:`MixtureSimulator.draw`):

- talkers: the target plus ``interferers`` (``[min, max]``) other speakers, each an utterance (``role`` mix/any) at
  a speed factor (``speed``: prob, range; real duration *and* pitch change, :func:`~.simulate.speed_perturb`);
  talker 0 fills the crop, talker 1 overlaps it by a ratio drawn from ``overlap`` (1 = full overlap), further
  interferers get random spans; levels: talker 0 at U(``level_db``) dBFS, every other at SIR U(``sir_db``) below it;
- optional room (``reverb.prob``): every talker convolved with its own source position of one generated room
  (:class:`~.simulate.RIRBank`; separate banks for train and val/test); the reference is ``reverb.target``
  (``early``: direct path + ``early_ms``, ``dry``: direct path, ``reverberant``);
- optional noise (``noise.prob``): colored noise (1/f^a, a ~ U(``exponent``)) or babble of other speakers of the
  same split (``noise.babble_prob``) at SNR U(``snr_db``) relative to the speech;
- peak normalisation to 0.9 (applied to the references too).

Queries (rows of a batch): each mixture yields one row per *query* ``(mixture, enrollment, target)``. Training:
talker 0 **and** talker 1 are both targets (two rows; wesep/ESPnet practice). A query becomes *target-absent* (TA;
enrollment of a speaker who is not in the mixture, target all zeros) with probability ``target_absent.fraction``
once the optimizer step reaches ``target_absent.start_step`` (before that: target-present only). Validation/test
items have three rows: talker 0, talker 1 (the **enrollment swap** of the first: same mixture, other enrollment) and
a TA row whose enrollment is the very enrollment of row 0 of the *next* mixture (the **mixture swap**: same
enrollment, a mixture without that talker).

Enrollment: other utterances of the target speaker (never the one in the mixture; ``role`` enroll/any), concatenated
until ``enroll_seconds`` and cropped; the same speed factor as the speaker's talker in the mixture
(``speed.same_for_enrollment``) so a perturbed speaker stays one consistent pseudo-speaker; optional noise
(``enrollment.noise_prob``, ``enrollment.snr_db``).

Seeding: training item ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])`` (:class:`EpochSampler` puts
the epoch into the index, so workers need no shared state). Validation/test recipes are drawn once from
``default_rng([seed, 7, split])`` and stored as ``<cache>/tse_manifests/<split>_<key>.json`` (same config -> same
file, byte for byte).

Batch (``B`` mixtures x ``Q`` queries flattened to ``N = B * Q`` rows): ``mixture [N, T]``, ``target [N, T]``,
``other [N, T]`` (the other main talker's reference, zeros for TA rows), ``enrollment [N, Te]``, ``present [N]`` bool,
``mix_id [N]`` long, ``query [N]`` long (0, 1, 2), ``enroll_speaker_id [N]`` long (the enrollment speaker's index
among all corpus speakers, sorted: the label of the optional speaker-classification loss), ``swap_of [N]`` long (for the mixture-swap row: the global row id
``mix_id * Q`` of the row that used the same enrollment on a mixture containing that speaker, else -1),
``speaker`` / ``enroll_speaker`` / ``description`` lists.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from audiolab.data.cache import atomic_write_bytes, content_hash
from audiolab.data.crops import EpochSampler, _AudioStore, prepare_audio_cache
from audiolab.data.module import CachedSplitDataModule, check_hparams, split_fraction_checks
from audiolab.data.splits import split_sources
from audiolab.models.tse.simulate import RIRBank, colored_noise, describe, rms_db, scale_to_db, speed_perturb
from audiolab.utils.config import plain

__all__ = ["TSEDataModule", "MixtureSimulator", "SpeakerIndex", "collate_queries", "split_speakers", "MANIFEST_VERSION"]

MANIFEST_VERSION = 1
ROOT_HINT = "run `make data` (builds data/tse_corpus) or `python -m audiolab.prepare tse_corpus`, or set data.root"
MAX_TRIES = 10
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}

DEFAULTS: dict[str, Any] = {
    "interferers": [1, 1],
    "sir_db": [-5.0, 5.0],
    "overlap": [1.0, 1.0],
    "level_db": [-33.0, -25.0],
    "speed": {"prob": 0.0, "range": [0.9, 1.1], "same_for_enrollment": True},
    "reverb": {"prob": 0.0, "target": "early", "early_ms": 50.0, "rt60": [0.2, 0.6], "train_rooms": 200,
               "eval_rooms": 40},
    "noise": {"prob": 0.0, "snr_db": [-5.0, 15.0], "exponent": [0.0, 2.0], "babble_prob": 0.0, "babble_talkers": [3, 6]},
    "enrollment": {"noise_prob": 0.0, "snr_db": [0.0, 25.0]},
    "target_absent": {"fraction": 0.0, "start_step": 0},
}


def _merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in (over or {}).items():
        if k not in base:
            raise ValueError(f"data.simulation: unknown key {k!r} (known: {', '.join(sorted(base))})")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ValueError(f"data.simulation.{k} must be a mapping, got {v!r}")
            unknown = set(v) - set(base[k])
            if unknown:
                raise ValueError(f"data.simulation.{k}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(base[k]))})")
            out[k].update(v)
        else:
            out[k] = v
    return out


def _uniform(rng: np.random.Generator, lo_hi: Sequence[float]) -> float:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return lo if hi <= lo else float(rng.uniform(lo, hi))


# -- speakers and split ---------------------------------------------------------------------------------------------
class SpeakerIndex:
    """Utterances of a prepared cache grouped by speaker (first-level folder), with roles from the corpus manifest."""

    def __init__(self, cache_manifest: dict[str, Any], corpus_manifest: dict[str, Any] | None, sample_rate: int):
        roles, kinds = {}, {}
        if corpus_manifest is not None:
            roles = {u["file"]: u.get("role", "any") for u in corpus_manifest.get("utterances", [])}
            kinds = {s: v.get("kind", "any") for s, v in corpus_manifest.get("speakers", {}).items()}
        self.sample_rate = int(sample_rate)
        self.utts: list[dict[str, Any]] = []
        self.by_speaker: dict[str, list[int]] = {}
        for e in cache_manifest["sources"]:
            spk = e["category"]
            if spk == ".":
                continue  # files directly in root belong to no speaker
            u = {"file": e["file"], "speaker": spk, "offset": int(e["offset"]), "n": int(e["n_samples"]),
                 "role": roles.get(e["file"], "any")}
            self.by_speaker.setdefault(spk, []).append(len(self.utts))
            self.utts.append(u)
        self.kinds = {s: kinds.get(s, "any") for s in self.by_speaker}
        #: speaker -> class index (sorted over the whole corpus): labels of the optional speaker-classification loss
        self.speaker_ids = {s: i for i, s in enumerate(sorted(self.by_speaker))}

    def mixable(self, spk: str) -> list[int]:
        return [i for i in self.by_speaker[spk] if self.utts[i]["role"] in ("mix", "any")]

    def enrollable(self, spk: str) -> list[int]:
        return [i for i in self.by_speaker[spk] if self.utts[i]["role"] in ("enroll", "any")]


def split_speakers(speakers: dict[str, str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Speaker-disjoint split, per kind (``{speaker: kind}``): seeded permutation within each kind
    (:func:`audiolab.data.splits.split_sources`, seed ``seed + crc32(kind)``); kinds with < 3 speakers train only."""
    by_kind: dict[str, list[str]] = {}
    for spk, kind in speakers.items():
        by_kind.setdefault(kind, []).append(spk)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for kind in sorted(by_kind):
        names = sorted(by_kind[kind])
        if len(names) < 3:
            out["train"].extend(names)
            continue
        parts = split_sources(names, val_fraction, test_fraction, seed + zlib.crc32(kind.encode()))
        for k in out:
            out[k].extend(parts[k])
    return {k: sorted(v) for k, v in out.items()}


# -- simulation ----------------------------------------------------------------------------------------------------
class MixtureSimulator:
    """Draws recipes (:meth:`draw`) and renders them (:meth:`render`) for one split's speakers."""

    def __init__(self, index: SpeakerIndex, store: _AudioStore, speakers: Sequence[str], sim: dict[str, Any],
                 n_samples: int, n_enroll: int, rirs: RIRBank | None, name: str = "train"):
        self.name = name
        self.index, self.store, self.sim = index, store, sim
        self.speakers = sorted(speakers)
        self.n, self.n_enroll = int(n_samples), int(n_enroll)
        self.rirs = rirs
        self.sr = index.sample_rate
        lo, hi = int(sim["interferers"][0]), int(sim["interferers"][1])
        if lo < 1 or hi < lo:
            raise ValueError(f"data.simulation.interferers must be [min >= 1, max >= min], got {sim['interferers']}")
        need = hi + 2  # talkers + one absent speaker for TA rows
        usable = [s for s in self.speakers if index.mixable(s) and len(index.enrollable(s)) >= 1
                  and len(index.by_speaker[s]) >= 2]
        if len(usable) < need:
            raise ValueError(f"the {name} split has {len(usable)} usable speakers ({usable}); {need} are needed for "
                             f"{hi} interferers plus a target-absent speaker: lower data.simulation.interferers or "
                             "change data.val_fraction / data.test_fraction")
        self.speakers = usable
        if rirs is not None and rirs.n_sources < hi + 1:
            raise ValueError(f"the room bank has {rirs.n_sources} source positions, fewer than {hi + 1} talkers")

    # ---- recipes
    def _segment(self, rng: np.random.Generator, utt: int, speed: float, length: int) -> dict[str, Any]:
        """Where in utterance ``utt`` (after speed perturbation) a talker's ``length`` samples come from."""
        n_perturbed = int(self.index.utts[utt]["n"] / speed)
        if n_perturbed <= length:
            return {"utt": utt, "start": 0, "pad": int(rng.integers(0, length - n_perturbed + 1))}
        return {"utt": utt, "start": int(rng.integers(0, n_perturbed - length + 1)), "pad": 0}

    def _enroll_spec(self, rng: np.random.Generator, spk: str, exclude: int | None, speed: float) -> dict[str, Any]:
        pool = [i for i in self.index.enrollable(spk) if i != exclude]
        if not pool:  # only the mixture's own utterance is enrollable: use any other file of the speaker
            pool = [i for i in self.index.by_speaker[spk] if i != exclude]
        order = [pool[i] for i in rng.permutation(len(pool))]
        need = int(math.ceil(self.n_enroll * speed)) + 1
        utts, total = [], 0
        while total < need:
            for u in order:
                utts.append(u)
                total += self.index.utts[u]["n"]
                if total >= need:
                    break
        start = int(rng.integers(0, max(1, total - need + 1)))
        spec: dict[str, Any] = {"speaker": spk, "utts": utts, "start": start, "speed": speed, "noise": None}
        en = self.sim["enrollment"]
        if rng.random() < float(en["noise_prob"]):
            spec["noise"] = {"seed": int(rng.integers(2**31)), "exponent": _uniform(rng, self.sim["noise"]["exponent"]),
                             "snr_db": _uniform(rng, en["snr_db"])}
        return spec

    def draw(self, rng: np.random.Generator, ta_prob: float = 0.0, eval_queries: bool = False) -> dict[str, Any]:
        """A random mixture recipe. ``eval_queries``: the 3-row validation/test layout (TP, swap, TA)."""
        sim = self.sim
        k = int(rng.integers(int(sim["interferers"][0]), int(sim["interferers"][1]) + 1))
        spk = [self.speakers[i] for i in rng.choice(len(self.speakers), size=k + 2, replace=False)]
        talker_spk, absent = spk[: k + 1], spk[k + 1]
        speed_on = rng.random() < float(sim["speed"]["prob"])
        talkers = []
        for t, s in enumerate(talker_spk):
            speed = round(_uniform(rng, sim["speed"]["range"]), 2) if speed_on else 1.0
            if t == 0:
                length, offset = self.n, 0
            elif t == 1:
                r = _uniform(rng, sim["overlap"])
                length = max(1, int(round(r * self.n)))
                offset = 0 if rng.random() < 0.5 else self.n - length
            else:
                length = int(rng.integers(self.n // 4, self.n + 1))
                offset = int(rng.integers(0, self.n - length + 1))
            utt = int(rng.choice(self.index.mixable(s)))
            seg = self._segment(rng, utt, speed, length)
            talkers.append({"speaker": s, "speed": speed, "length": length, "offset": offset,
                            "sir_db": 0.0 if t == 0 else _uniform(rng, sim["sir_db"]), **seg})
        recipe: dict[str, Any] = {"talkers": talkers, "level_db": _uniform(rng, sim["level_db"]), "room": None,
                                  "noise": None}
        if self.rirs is not None and rng.random() < float(sim["reverb"]["prob"]):
            recipe["room"] = {"index": int(rng.integers(len(self.rirs))),
                              "sources": [int(x) for x in rng.permutation(self.rirs.n_sources)[: k + 1]]}
        if rng.random() < float(sim["noise"]["prob"]):
            noise: dict[str, Any] = {"seed": int(rng.integers(2**31)), "snr_db": _uniform(rng, sim["noise"]["snr_db"])}
            others = [s for s in self.speakers if s not in talker_spk]
            if others and rng.random() < float(sim["noise"]["babble_prob"]):
                m = int(rng.integers(int(sim["noise"]["babble_talkers"][0]), int(sim["noise"]["babble_talkers"][1]) + 1))
                babble = []
                for s in (others[i] for i in rng.choice(len(others), size=min(m, len(others)), replace=False)):
                    u = int(rng.choice(self.index.by_speaker[s]))
                    babble.append(self._segment(rng, u, 1.0, self.n))
                noise["babble"] = babble
            else:
                noise["exponent"] = _uniform(rng, sim["noise"]["exponent"])
            recipe["noise"] = noise
        same = bool(sim["speed"]["same_for_enrollment"])
        queries = []
        for t in (0, 1):
            enroll = self._enroll_spec(rng, talker_spk[t], talkers[t]["utt"], talkers[t]["speed"] if same else 1.0)
            if not eval_queries and rng.random() < ta_prob:
                queries.append({"talker": None, "enroll": self._enroll_spec(rng, absent, None, 1.0)})
            else:
                queries.append({"talker": t, "enroll": enroll})
        if eval_queries:
            queries.append({"talker": None, "enroll": self._enroll_spec(rng, absent, None, 1.0)})
        recipe["queries"] = queries
        return recipe

    # ---- rendering
    def _read(self, utt: int) -> np.ndarray:
        u = self.index.utts[utt]
        return self.store.read(u["offset"], 0, u["n"])

    def _talker_signal(self, t: dict[str, Any], context: int) -> tuple[np.ndarray, int]:
        """The talker's samples (``context`` lead-in + ``length``), speed-perturbed; returns (signal, lead-in used)."""
        u = self.index.utts[t["utt"]]
        f = float(t["speed"])
        lead = min(context, int(t["start"])) if t["pad"] == 0 and t["offset"] == 0 else 0
        s0 = int(math.floor((t["start"] - lead) * f))
        s1 = min(u["n"], int(math.ceil((t["start"] + t["length"]) * f)) + 2)
        x = self.store.read(u["offset"], s0, s1 - s0)
        y = speed_perturb(x, f)
        need = lead + t["length"]
        y = y[:need] if len(y) >= need else np.pad(y, (0, need - len(y)))
        if t["pad"]:
            y = np.concatenate([np.zeros(t["pad"], np.float32), y[: need - t["pad"]]])
        return y.astype(np.float32), lead

    def render(self, recipe: dict[str, Any]) -> dict[str, Any]:
        """Audio of a recipe: ``mixture [T]``, ``references [K, T]`` (the targets as heard), ``enrollments [Q, Te]``."""
        n = self.n
        room = recipe.get("room")
        ref_kind = self.sim["reverb"]["target"]
        mixed, refs = [], []
        for i, t in enumerate(recipe["talkers"]):
            context = self.rirs.context() if (room is not None and self.rirs is not None) else 0
            x, lead = self._talker_signal(t, context)
            if room is not None and self.rirs is not None:
                rev, early, dry = self.rirs.apply(x, room["index"], room["sources"][i], t["length"], lead)
                ref = {"early": early, "dry": dry, "reverberant": rev}[ref_kind]
                heard = rev
            else:
                heard = ref = x[lead:]
            full_h, full_r = np.zeros(n, np.float32), np.zeros(n, np.float32)
            o = int(t["offset"])
            full_h[o : o + t["length"]] = heard[: n - o]
            full_r[o : o + t["length"]] = ref[: n - o]
            mixed.append(full_h)
            refs.append(full_r)
        # levels: talker 0 at level_db, the others at their SIR below it (measured on what is heard)
        g0 = 10 ** ((recipe["level_db"] - rms_db(mixed[0])) / 20.0) if rms_db(mixed[0]) > -200 else 1.0
        gains = [g0]
        for i in range(1, len(mixed)):
            h_db = rms_db(mixed[i])
            gains.append(10 ** ((recipe["level_db"] - recipe["talkers"][i]["sir_db"] - h_db) / 20.0) if h_db > -200 else 1.0)
        mixed = [m * g for m, g in zip(mixed, gains)]
        refs = [r * g for r, g in zip(refs, gains)]
        speech = np.sum(mixed, axis=0)
        mixture = speech.copy()
        nz = recipe.get("noise")
        if nz:
            if "babble" in nz:
                noise = np.zeros(n, np.float32)
                for seg in nz["babble"]:
                    b, _ = self._talker_signal({"utt": seg["utt"], "speed": 1.0, "start": seg["start"], "pad": seg["pad"],
                                                "length": n, "offset": 1}, 0)
                    noise += scale_to_db(b, -30.0)
            else:
                noise = colored_noise(n, float(nz["exponent"]), np.random.default_rng(nz["seed"]))
            mixture = mixture + scale_to_db(noise, rms_db(speech) - float(nz["snr_db"]))
        peak = float(np.abs(mixture).max())
        scale = 0.9 / peak if peak > 0.9 else 1.0
        mixture, refs = mixture * scale, [r * scale for r in refs]
        enrolls = [self.render_enrollment(q["enroll"]) for q in recipe["queries"]]
        return {"mixture": mixture.astype(np.float32), "references": np.stack(refs).astype(np.float32),
                "enrollments": np.stack(enrolls).astype(np.float32)}

    def render_enrollment(self, spec: dict[str, Any]) -> np.ndarray:
        x = np.concatenate([self._read(u) for u in spec["utts"]])
        f = float(spec["speed"])
        need = int(math.ceil(self.n_enroll * f)) + 1
        x = x[spec["start"] : spec["start"] + need]
        y = speed_perturb(x, f)[: self.n_enroll]
        if len(y) < self.n_enroll:
            y = np.pad(y, (0, self.n_enroll - len(y)))
        y = scale_to_db(y, -28.0)
        nz = spec.get("noise")
        if nz:
            noise = colored_noise(self.n_enroll, float(nz["exponent"]), np.random.default_rng(nz["seed"]))
            y = y + scale_to_db(noise, rms_db(y) - float(nz["snr_db"]))
        return y.astype(np.float32)

    def item(self, recipe: dict[str, Any], mix_id: int, swap_of: Sequence[int] | None = None) -> dict[str, Any]:
        """Render a recipe into the per-query arrays of one dataset item (see the module docs for the keys)."""
        audio = self.render(recipe)
        refs = audio["references"]
        q_rows = []
        zeros = np.zeros(self.n, np.float32)
        for qi, q in enumerate(recipe["queries"]):
            t = q["talker"]
            q_rows.append({
                "target": refs[t] if t is not None else zeros,
                "other": refs[1 - t] if t is not None and t in (0, 1) else zeros,
                "present": t is not None,
                "speaker": recipe["talkers"][t]["speaker"] if t is not None else "",
                "enroll_speaker": q["enroll"]["speaker"],
                "enroll_speaker_id": self.index.speaker_ids[q["enroll"]["speaker"]],
                "swap_of": int(swap_of[qi]) if swap_of is not None else -1,
            })
        return {"mixture": audio["mixture"], "enrollments": audio["enrollments"], "queries": q_rows, "mix_id": mix_id,
                "description": describe(recipe)}


def collate_queries(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Flatten ``B`` items x ``Q`` queries into ``N`` rows (see the module docs)."""
    rows: dict[str, list] = {k: [] for k in ("mixture", "target", "other", "enrollment", "present", "mix_id", "query",
                                             "swap_of", "enroll_speaker_id", "speaker", "enroll_speaker",
                                             "description")}
    for it in items:
        for qi, q in enumerate(it["queries"]):
            rows["mixture"].append(it["mixture"])
            rows["enrollment"].append(it["enrollments"][qi])
            rows["target"].append(q["target"])
            rows["other"].append(q["other"])
            rows["present"].append(q["present"])
            rows["mix_id"].append(it["mix_id"])
            rows["query"].append(qi)
            rows["swap_of"].append(q["swap_of"])
            rows["speaker"].append(q["speaker"])
            rows["enroll_speaker"].append(q["enroll_speaker"])
            rows["enroll_speaker_id"].append(q["enroll_speaker_id"])
            rows["description"].append(it["description"])
    out: dict[str, Any] = {}
    for k in ("mixture", "target", "other", "enrollment"):
        out[k] = torch.from_numpy(np.stack(rows[k]))
    out["present"] = torch.tensor(rows["present"], dtype=torch.bool)
    for k in ("mix_id", "query", "swap_of", "enroll_speaker_id"):
        out[k] = torch.tensor(rows[k], dtype=torch.long)
    for k in ("speaker", "enroll_speaker", "description"):
        out[k] = rows[k]
    return out


class _TrainMixtures(Dataset):
    def __init__(self, sim: MixtureSimulator, n: int, seed: int, ta: dict[str, Any], rows_per_step: int):
        self.sim, self.n, self.seed = sim, int(n), int(seed)
        self.ta_fraction, self.ta_start = float(ta["fraction"]), int(ta["start_step"])
        self.items_per_step = max(1, int(rows_per_step))

    def __len__(self) -> int:
        return self.n

    def recipe(self, index: int) -> dict[str, Any]:
        epoch, i = divmod(int(index), self.n)
        rng = np.random.default_rng([self.seed, epoch, i])
        step = int(index) // self.items_per_step  # optimizer step this item belongs to (TA schedule)
        ta = self.ta_fraction if step >= self.ta_start else 0.0
        return self.sim.draw(rng, ta_prob=ta)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sim.item(self.recipe(index), int(index))


class _FixedMixtures(Dataset):
    def __init__(self, sim: MixtureSimulator, recipes: list[dict[str, Any]]):
        self.sim, self.recipes = sim, recipes
        q = len(recipes[0]["queries"]) if recipes else 3
        self.q = q

    def __len__(self) -> int:
        return len(self.recipes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        swap = None
        if self.q == 3 and not self.recipes[index]["queries"][2].get("no_swap"):
            swap = [-1, -1, ((index + 1) % len(self.recipes)) * self.q]
        return self.sim.item(self.recipes[index], int(index), swap)


class TSEDataModule(CachedSplitDataModule):
    """Speaker-disjoint on-the-fly TSE mixtures (see the module docs). ``batch_size`` counts *mixtures*."""

    def __init__(
        self,
        root: str,
        cache_dir: str,
        sample_rate: int = 16000,
        crop_seconds: float = 3.0,
        enroll_seconds: float = 3.0,
        batch_size: int = 4,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        mixtures_per_epoch: int = 2000,
        val_mixtures: int = 100,
        test_mixtures: int = 200,
        simulation: dict[str, Any] | None = None,
        accumulate_grad_batches: int = 1,
        on_bad_file: str = "error",
        storage_dtype: str = "float16",
    ) -> None:
        super().__init__()
        simulation = plain(simulation)  # hyper-parameters go into checkpoints: plain types only (weights_only load)
        self.save_hyperparameters()
        check_hparams([("data.sample_rate", sample_rate, int(sample_rate) > 0, "a positive integer (Hz)"),
                       ("data.crop_seconds", crop_seconds, crop_seconds > 0, "> 0"),
                       ("data.enroll_seconds", enroll_seconds, enroll_seconds > 0, "> 0"),
                       ("data.batch_size", batch_size, batch_size >= 1, ">= 1"),
                       ("data.num_workers", num_workers, num_workers >= 0, ">= 0"),
                       ("data.mixtures_per_epoch", mixtures_per_epoch, mixtures_per_epoch >= 1, ">= 1"),
                       ("data.val_mixtures", val_mixtures, val_mixtures >= 2, ">= 2"),
                       ("data.test_mixtures", test_mixtures, test_mixtures >= 2, ">= 2"),
                       *(("data." + k, v, ok, w) for k, v, ok, w in split_fraction_checks(val_fraction, test_fraction))])
        self.split_seed, self.overfit_batches = int(split_seed), 0
        self.on_bad_file = on_bad_file
        self._index: SpeakerIndex | None = None
        self._store: _AudioStore | None = None
        self.root, self.cache_dir = root, cache_dir
        self.sample_rate = int(sample_rate)
        self.n_samples = int(round(crop_seconds * sample_rate))
        self.n_enroll = int(round(enroll_seconds * sample_rate))
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.sim_cfg = _merge(DEFAULTS, simulation)
        if self.sim_cfg["reverb"]["target"] not in ("early", "dry", "reverberant"):
            raise ValueError(f"data.simulation.reverb.target must be early|dry|reverberant, got {self.sim_cfg['reverb']['target']!r}")

    # ---- preparation
    def _root(self) -> Path:
        if str(self.root) == "synthetic":  # self-contained speakers for debug=fast and tests (no packages needed)
            from audiolab.models.tse.corpus import build_synthetic_corpus

            return build_synthetic_corpus(Path(self.cache_dir).expanduser() / "synthetic_corpus_v1")
        r = Path(self.root).expanduser()
        if not r.is_dir():
            raise FileNotFoundError(f"TSE corpus root {str(r)!r} does not exist: {ROOT_HINT}")
        return r

    def min_source(self) -> tuple[int, str]:
        """Any non-empty utterance is usable: shorter ones than a crop are placed at a random offset (zero padding)."""
        return 1, "data.crop_seconds (shorter utterances are zero-padded)"

    def _prepare(self, progress: bool) -> Path:
        return prepare_audio_cache(self._root(), self.cache_dir, sample_rate=self.sample_rate,
                                   on_bad_file=self.hparams.on_bad_file, dtype=self.hparams.storage_dtype,
                                   progress=progress, root_hint=ROOT_HINT)

    def _rirs(self, split: str) -> RIRBank | None:
        rv = self.sim_cfg["reverb"]
        if float(rv["prob"]) <= 0:
            return None
        n_rooms = int(rv["train_rooms"] if split == "train" else rv["eval_rooms"])
        seed = int(self.hparams.seed) * 10 + (0 if split == "train" else 1)  # train and eval rooms differ
        n_src = int(self.sim_cfg["interferers"][1]) + 1
        return RIRBank(Path(self.cache_dir).expanduser() / "rirs", sr=self.sample_rate, n_rooms=n_rooms,
                       n_sources=max(2, n_src), seed=seed, rt60=tuple(rv["rt60"]), early_ms=float(rv["early_ms"]))

    def setup(self, stage: str | None = None) -> None:
        """Split the speakers (once) and build the datasets the stage needs (``fit``: train + val, ``validate``:
        val, ``test``: test, ``None``: all): a test-only run never generates the training room bank."""
        need = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}.get(
            stage or "", ("train", "val", "test"))
        if self._index is None:
            cache_manifest = self._cache_manifest()
            corpus_path = self._root() / "manifest.json"
            corpus = json.loads(corpus_path.read_text()) if corpus_path.is_file() else None
            index = SpeakerIndex(cache_manifest, corpus, self.sample_rate)
            if len(index.by_speaker) < 3:
                raise ValueError(f"TSE corpus {self.root!r} has {len(index.by_speaker)} speaker folders; need >= 3 "
                                 f"(one first-level folder per speaker): {ROOT_HINT}")
            hp = self.hparams
            self.splits = split_speakers(index.kinds, hp.val_fraction, hp.test_fraction, hp.split_seed)
            for key in ("val", "test"):
                if not self.splits[key]:
                    raise ValueError(f"the {key} split has no speakers: the corpus needs >= 3 speakers of one kind")
            self._index, self._store = index, _AudioStore(self.cache_path)
            self._write_split(index)
        hp = self.hparams
        for split in need:
            if getattr(self, f"{split}_set") is not None:
                continue
            sim = MixtureSimulator(self._index, self._store, self.splits[split], self.sim_cfg, self.n_samples,
                                   self.n_enroll, self._rirs(split), split)
            if split == "train":
                accumulate = int(hp.accumulate_grad_batches)
                if self.trainer is not None:
                    accumulate = int(getattr(self.trainer, "accumulate_grad_batches", accumulate) or accumulate)
                self.train_set = _TrainMixtures(sim, hp.mixtures_per_epoch, hp.seed, self.sim_cfg["target_absent"],
                                                self.batch_size * accumulate)
                self.train_sampler = EpochSampler(len(self.train_set))
            else:
                n = hp.val_mixtures if split == "val" else hp.test_mixtures
                setattr(self, f"{split}_set", _FixedMixtures(sim, self.manifest(split, sim, n)))

    def manifest(self, split: str, sim: MixtureSimulator, n: int) -> list[dict[str, Any]]:
        """The fixed recipes of ``split`` (``<cache>/tse_manifests/<split>_<key>.json``; built once, reproducible)."""
        assert self.cache_path is not None
        params = {"version": MANIFEST_VERSION, "split": split, "n": int(n), "seed": int(self.hparams.seed),
                  "speakers": sim.speakers, "sim": {k: v for k, v in self.sim_cfg.items() if k != "target_absent"},
                  "n_samples": self.n_samples, "n_enroll": self.n_enroll}
        path = self.cache_path / "tse_manifests" / f"{split}_{content_hash([], params)}.json"
        if path.is_file():
            return json.loads(path.read_text())["recipes"]
        rng = np.random.default_rng([int(self.hparams.seed), 7, _SPLIT_ID[split]])
        recipes = [sim.draw(rng, eval_queries=True) for _ in range(int(n))]
        for i, r in enumerate(recipes):  # mixture swap: row 2 reuses the enrollment of row 0 of the next mixture
            nxt = recipes[(i + 1) % len(recipes)]
            if nxt["talkers"][0]["speaker"] not in {t["speaker"] for t in r["talkers"]}:
                r["queries"][2]["enroll"] = nxt["queries"][0]["enroll"]
            else:  # the next mixture's target talks here too: keep the independent absent speaker (no swap pair)
                r["queries"][2]["no_swap"] = True
        data = (json.dumps({"params": params, "recipes": recipes}, indent=1) + "\n").encode()
        atomic_write_bytes(path, data)
        return recipes

    def _write_split(self, index: SpeakerIndex) -> None:
        assert self.cache_path is not None
        body = {"splits": self.splits, "kinds": index.kinds,
                "utterances": {s: len(v) for s, v in index.by_speaker.items()}}
        path = self.cache_path / "tse_splits" / f"{content_hash([], {'s': self.splits})}.json"
        data = (json.dumps(body, indent=1) + "\n").encode()
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)

    # ---- loaders
    def _loader(self, ds: Dataset | None, *, shuffle: bool = False, sampler=None) -> DataLoader:
        if ds is None:
            raise RuntimeError("TSEDataModule.setup() must run before requesting a dataloader")
        # rows come from collate_queries (B mixtures x Q queries); the training order is the EpochSampler's
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, collate_fn=collate_queries, drop_last=False)

    def fixed_dataloader(self, split: str, n: int | None = None) -> DataLoader:
        """Seeded fixed mixtures of any split's speakers, built like the val / test sets (every row kind, both
        controls, a manifest under ``<cache>/tse_manifests``). ``train`` gives new mixtures of the voices the model
        was trained on: against ``test`` it measures the seen / unseen speaker gap (``ladder --split train``)."""
        if split not in _SPLIT_ID:
            raise ValueError(f"split must be one of {sorted(_SPLIT_ID)}, got {split!r}")
        if self._index is None:
            self.setup("test")
        hp = self.hparams
        n = int(n if n is not None else (hp.val_mixtures if split == "val" else hp.test_mixtures))
        if n < 1:
            raise ValueError(f"fixed_dataloader needs n >= 1 mixtures, got {n}")
        sim = MixtureSimulator(self._index, self._store, self.splits[split], self.sim_cfg, self.n_samples,
                               self.n_enroll, self._rirs(split), split)
        return self._loader(_FixedMixtures(sim, self.manifest(split, sim, n)))

    def probe_batch(self, n: int = 4) -> dict[str, Any]:
        """The first ``ceil(n / 3)`` validation mixtures, all three rows each (TP, enrollment swap, TA)."""
        if self.val_set is None:
            self.setup("validate")
        assert self.val_set is not None
        k = max(1, min(len(self.val_set), int(math.ceil(int(n) / 3))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return collate_queries([self.val_set[i] for i in range(k)])

