"""TSE mixtures: speed perturbation, speaker-disjoint split, both talkers as targets, TA schedule, manifests, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiolab.models.tse.data import TSEDataModule, split_speakers
from audiolab.models.tse.simulate import RIRBank, colored_noise, speed_perturb

SR = 16000


def _f0(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spec) * sr / (8 * len(x)))


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.05])
def test_speed_perturbation_changes_length_and_pitch_by_the_factor(factor):
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 220.0 * t).astype(np.float32)
    y = speed_perturb(x, factor)
    assert abs(len(y) - len(x) / factor) <= 2
    assert _f0(y, SR) == pytest.approx(220.0 * factor, rel=0.005)


def test_speed_one_is_identity_and_bad_factor_raises():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    assert speed_perturb(x, 1.0) is x
    with pytest.raises(ValueError, match="speed factor"):
        speed_perturb(x, 0.0)


def test_colored_noise_slope():
    rng = np.random.default_rng(0)
    for a in (0.0, 1.0, 2.0):
        x = colored_noise(2**16, a, rng)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.arange(len(p))
        lo, hi = p[(f > 100) & (f < 200)].mean(), p[(f > 1000) & (f < 2000)].mean()
        assert 10 * np.log10(lo / hi) == pytest.approx(10 * a, abs=1.5)  # 10 dB per decade per unit exponent


def test_rir_bank_is_cached_and_direct_path_is_first(tmp_path):
    pytest.importorskip("pyroomacoustics")
    bank = RIRBank(tmp_path, sr=SR, n_rooms=2, n_sources=2, seed=0, rt60=(0.2, 0.3))
    again = RIRBank(tmp_path, sr=SR, n_rooms=2, n_sources=2, seed=0, rt60=(0.2, 0.3))
    assert np.array_equal(bank.rirs, again.rirs)
    for r in range(2):
        for s in range(2):
            d = int(bank.direct[r, s])
            h = bank.rirs[r, s]
            assert abs(h[d - 2 : d + 3]).max() == pytest.approx(1.0, abs=1e-5)
            assert np.abs(h[: max(0, d - 45)]).max() < 0.05  # nothing before the direct path (but the sinc tail)
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    rev, early, dry = bank.apply(x, 0, 0, SR, 0)
    assert rev.shape == early.shape == dry.shape == (SR,)
    d = int(bank.direct[0, 0])
    assert np.allclose(dry[d:], x[: SR - d])


def test_split_is_speaker_disjoint_and_per_kind():
    speakers = {f"t{i}": "tts" for i in range(10)} | {f"w{i}": "words" for i in range(6)} | {"p0": "prompts"}
    s = split_speakers(speakers, 0.2, 0.2, seed=0)
    sets = [set(v) for v in s.values()]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])
    assert set().union(*sets) == set(speakers)
    for key in ("val", "test"):
        assert any(x.startswith("t") for x in s[key]) and any(x.startswith("w") for x in s[key])
    assert "p0" in s["train"]  # a kind with < 3 speakers trains only
    assert s == split_speakers(speakers, 0.2, 0.2, seed=0)


def _dm(root, cache, **sim) -> TSEDataModule:
    dm = TSEDataModule(str(root), str(cache), crop_seconds=1.0, enroll_seconds=1.0, batch_size=3, val_mixtures=6,
                       test_mixtures=6, val_fraction=0.3, test_fraction=0.3, mixtures_per_epoch=50, simulation=sim)
    dm.prepare_data()
    dm.setup()
    return dm


def test_batches_hold_both_talkers_as_targets_with_their_own_enrollments(tse_corpus, tmp_path):
    dm = _dm(tse_corpus, tmp_path)
    b = next(iter(dm.train_dataloader()))
    n = b["mixture"].shape[0]
    assert n == 6 and b["target"].shape == b["mixture"].shape and b["enrollment"].shape == (6, SR)
    for i in range(0, n, 2):  # rows 2k and 2k+1: the same mixture, the two talkers
        assert torch.equal(b["mixture"][i], b["mixture"][i + 1])
        assert b["speaker"][i] != b["speaker"][i + 1]
        assert b["enroll_speaker"][i] == b["speaker"][i] and b["enroll_speaker"][i + 1] == b["speaker"][i + 1]
        assert torch.equal(b["other"][i], b["target"][i + 1])
        # clean two-talker mixture = the sum of the two references
        assert torch.allclose(b["target"][i] + b["target"][i + 1], b["mixture"][i], atol=1e-5)
    assert set(b["speaker"]) <= set(dm.splits["train"])


def test_enrollment_is_another_utterance_of_the_target(tse_corpus, tmp_path):
    dm = _dm(tse_corpus, tmp_path)
    sim = dm.train_set.sim
    for idx in range(20):
        r = dm.train_set.recipe(idx)
        for q in r["queries"]:
            t = r["talkers"][q["talker"]]
            assert q["enroll"]["speaker"] == t["speaker"]
            assert t["utt"] not in q["enroll"]["utts"]
            assert all(sim.index.utts[u]["role"] in ("enroll", "any") for u in q["enroll"]["utts"])
            assert sim.index.utts[t["utt"]]["role"] in ("mix", "any")


def test_target_absent_schedule(tse_corpus, tmp_path):
    dm = _dm(tse_corpus, tmp_path, target_absent={"fraction": 0.5, "start_step": 4})
    ds = dm.train_set  # batch_size 3 mixtures per optimizer step: items 0..11 are steps 0..3
    before = [q for i in range(12) for q in ds.recipe(i)["queries"]]
    after = [q for i in range(12, 60) for q in ds.recipe(i)["queries"]]
    assert all(q["talker"] is not None for q in before)
    frac = np.mean([q["talker"] is None for q in after])
    assert 0.3 < frac < 0.7
    item = ds[next(i for i in range(12, 60) if any(q["talker"] is None for q in ds.recipe(i)["queries"]))]
    ta = [q for q in item["queries"] if not q["present"]][0]
    assert not np.any(ta["target"]) and ta["enroll_speaker"] not in item["description"].split("+")


def test_eval_rows_and_swaps(tse_corpus, tmp_path):
    dm = _dm(tse_corpus, tmp_path)
    b = dm.probe_batch(6)
    assert b["query"].tolist() == [0, 1, 2, 0, 1, 2]
    assert b["present"].tolist() == [True, True, False, True, True, False]
    for i in (2, 5):
        assert float(b["target"][i].abs().max()) == 0.0
        if int(b["swap_of"][i]) >= 0:  # mixture swap: the enrollment of row 0 of the next mixture
            nxt = dm.val_set[int(b["mix_id"][i]) + 1 if int(b["mix_id"][i]) + 1 < len(dm.val_set) else 0]
            assert np.array_equal(b["enrollment"][i].numpy(), nxt["enrollments"][0])


def test_manifests_are_reproducible(tse_corpus, tmp_path):
    a = _dm(tse_corpus, tmp_path / "a", speed={"prob": 1.0}, noise={"prob": 1.0})
    b = _dm(tse_corpus, tmp_path / "b", speed={"prob": 1.0}, noise={"prob": 1.0})
    files_a = sorted((a.cache_path / "tse_manifests").glob("*.json"))
    files_b = sorted((b.cache_path / "tse_manifests").glob("*.json"))
    assert [f.name for f in files_a] == [f.name for f in files_b]
    for fa, fb in zip(files_a, files_b):
        assert fa.read_bytes() == fb.read_bytes()
    assert np.array_equal(a.val_set[0]["mixture"], b.val_set[0]["mixture"])
    # the training stream is a function of (seed, epoch, index), not of the worker or call order
    assert json.dumps(a.train_set.recipe(7)) == json.dumps(b.train_set.recipe(7))
    assert json.dumps(a.train_set.recipe(7)) != json.dumps(a.train_set.recipe(57))  # epoch 1, index 7


def test_fixed_dataloader_scores_any_split_and_test_is_the_test_set(tse_corpus, tmp_path):
    dm = _dm(tse_corpus, tmp_path)
    seen = [b for b in dm.fixed_dataloader("train", n=4)]
    speakers = ({s for b in seen for s in b["speaker"]} | {s for b in seen for s in b["enroll_speaker"]}) - {""}
    assert speakers and speakers <= set(dm.splits["train"])  # training voices only ("": a target-absent row)
    assert sum(int(b["mixture"].shape[0]) for b in seen) == 4 * 3
    again = next(iter(dm.fixed_dataloader("train", n=4)))  # seeded: the same mixtures on every call
    assert torch.equal(again["mixture"], seen[0]["mixture"])
    ours, theirs = next(iter(dm.fixed_dataloader("test"))), next(iter(dm.test_dataloader()))
    assert torch.equal(ours["mixture"], theirs["mixture"]) and ours["speaker"] == theirs["speaker"]
    with pytest.raises(ValueError, match="split must be one of"):
        dm.fixed_dataloader("dev")


def test_noise_reverb_speed_and_interferers_render(tse_corpus, tmp_path):
    pytest.importorskip("pyroomacoustics")
    dm = _dm(tse_corpus, tmp_path, interferers=[1, 1], speed={"prob": 1.0},
             reverb={"prob": 1.0, "train_rooms": 2, "eval_rooms": 2, "rt60": [0.2, 0.25]}, noise={"prob": 1.0, "snr_db": [5.0, 5.0]})
    it = dm.train_set[3]
    r = dm.train_set.recipe(3)
    assert r["room"] is not None and r["noise"] is not None
    speeds = [t["speed"] for t in r["talkers"]]
    assert all(0.9 <= f <= 1.1 for f in speeds) and any(f != 1.0 for f in speeds)
    m = it["mixture"]
    assert np.isfinite(m).all() and np.abs(m).max() <= 0.9 + 1e-6
    refs = [q["target"] for q in it["queries"] if q["present"]]
    assert refs and all(np.abs(x).max() > 0 for x in refs)


def test_bad_inputs_are_named(tse_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        TSEDataModule(str(tmp_path / "nope"), str(tmp_path)).prepare_data()
    with pytest.raises(ValueError, match="interferers"):
        _dm(tse_corpus, tmp_path, interferers=[3, 3])
    with pytest.raises(ValueError, match="simulation: unknown key"):
        TSEDataModule(str(tse_corpus), str(tmp_path), simulation={"sirr_db": [0, 1]})
    with pytest.raises(ValueError, match="crop_seconds"):
        TSEDataModule(str(tse_corpus), str(tmp_path), crop_seconds=0)
