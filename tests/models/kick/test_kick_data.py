"""Kick data: the mel equals librosa's, clip conventions, name filters and keywords, aggregation, preprocessing
(unreadable files listed), split by drum, hop-aligned vocoder crops, vocabulary errors."""

from __future__ import annotations

import csv
import json

import librosa
import numpy as np
import pytest
import torch

from audiolab.audio.io import AudioLoadError
from audiolab.models.kick.audio import CLIP_SAMPLES, MelConfig, SilentClipError, prepare_clip
from audiolab.models.kick.data import KickDataModule, aggregate, preprocess
from audiolab.models.kick.keywords import KeywordVocabulary, drum_group, keywords_from_name, kick_name_reason
from audiolab.models.kick.synth import KEYWORD_RULES, KickParams, keywords_for, render_kick, synth_name


def _kick() -> np.ndarray:
    return render_kick(KickParams(50.0, 4.0, 0.01, 0.8, 0.7, 0.2, 3.0), seed=1)


def test_mel_equals_librosa_htk_no_norm_center_power2():
    x = prepare_clip(_kick())
    ours = MelConfig()(torch.from_numpy(x))
    ref = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=44100, n_fft=2048, hop_length=512, n_mels=128,
                                         htk=True, norm=None, center=True, power=2.0)
    ref = np.log(np.clip(ref, 1e-5, None))
    assert tuple(ours.shape) == (1, 128, 173) == (1, *ref.shape)
    # float32 STFT vs float64: compare where the mel is above the floor by a margin
    mask = ref > np.log(1e-4)
    assert mask.mean() > 0.3
    np.testing.assert_allclose(ours[0].numpy()[mask], ref[mask], atol=2e-3)
    assert np.all(ours[0].numpy()[ref <= np.log(1e-5) + 1e-9] <= np.log(1e-5) + 0.05)


def test_prepare_clip_pads_trims_peaks_and_fades():
    short = np.sin(np.linspace(0, 100, 1000)) * 0.1
    y = prepare_clip(short)
    assert y.shape == (CLIP_SAMPLES,) and y.dtype == np.float32
    assert np.isclose(np.abs(y).max(), 10 ** (-1 / 20), rtol=1e-5)
    long = np.ones(3 * 44100)
    z = prepare_clip(long)
    fade = round(0.2 * 44100)
    assert z[-1] == 0.0
    np.testing.assert_allclose(z[-fade:], 10 ** (-1 / 20) * np.linspace(1, 0, fade), rtol=1e-5, atol=1e-7)
    assert np.allclose(z[: CLIP_SAMPLES - fade], 10 ** (-1 / 20))
    with pytest.raises(SilentClipError, match="silent"):
        prepare_clip(np.zeros(500), name="quiet.wav")


@pytest.mark.parametrize("name,size,expected", [
    ("Kick_01.wav", 50_000, None),
    ("bd_haus.flac", 50_000, None),
    ("drum_bass_hard.flac", 50_000, None),
    ("BassDrum01.ogg", 50_000, None),
    ("808 Bass Drum.wav", 50_000, None),
    ("tr909 bd.wav", 50_000, None),
    ("snare_01.wav", 50_000, "not a kick name"),
    ("bdrum.wav", 50_000, "not a kick name"),
    ("kick_loop_01.wav", 50_000, "loop"),
    ("House Kick 128BPM.wav", 50_000, "BPM-tagged"),
    ("kick_bpm_fill.wav", 50_000, "BPM-tagged"),
    ("kick_tiny.wav", 4_000, "smaller than 5 KB"),
    ("kick_huge.wav", 2_000_000, "larger than 1 MB"),
])
def test_kick_name_filter(name, size, expected):
    assert kick_name_reason(name, size) == expected


def test_keyword_rules():
    assert keywords_from_name("Kick_Long-808 punchy.v2") == ["kick", "long", "punchy", "v2"]
    assert keywords_from_name("a_1_b-22") == []
    assert keywords_from_name("KICK kick Kick") == ["kick"]
    # velocity layers of one drum share a group, different drums do not
    assert drum_group("hydrogen/GMRockKit", "Kick-Soft") == drum_group("hydrogen/GMRockKit", "Kick-Hardest")
    assert drum_group("sf", "kick_fluidr3_room_n36_vel040") == drum_group("sf", "kick_fluidr3_room_n36_vel127")
    assert drum_group("sf", "kick_fluidr3_room_n36_vel040") != drum_group("sf", "kick_fluidr3_room_n35_vel040")
    assert drum_group("lmms", "kick01") == drum_group("lmms", "kick02") != drum_group("lmms", "kick_long01")
    assert drum_group("sonicpi", "bd_808") != drum_group("sonicpi", "bd_ada")


def test_synth_keywords_follow_parameters():
    p = KickParams(40.0, 6.0, 0.01, 1.2, 0.9, 0.4, 5.0)
    assert keywords_for(p) == ["long", "sub", "punchy", "click", "noisy", "distorted"]
    name = synth_name(7, p)
    assert name == "kick_synth_00007_long_sub_punchy_click_noisy_distorted.wav"
    assert keywords_from_name(name[:-4]) == ["kick", "synth", "long", "sub", "punchy", "click", "noisy", "distorted"]
    a, b = render_kick(p, seed=3), render_kick(p, seed=3)
    assert np.array_equal(a, b) and a.shape == (88200,)
    assert set(KEYWORD_RULES) >= {"long", "short", "punchy", "sub", "distorted"}


def test_aggregate_and_preprocess_list_bad_files(tmp_path):
    src = tmp_path / "src"
    (src / "kit").mkdir(parents=True)
    import soundfile as sf

    sf.write(src / "kit" / "Kick-Hard.wav", _kick(), 44100)
    sf.write(src / "kit" / "Kick-Soft.wav", 0.3 * _kick(), 44100)
    sf.write(src / "kit" / "snare.wav", _kick(), 44100)
    sf.write(src / "kit" / "kick_loop.wav", _kick(), 44100)
    sf.write(src / "zz_Kick-Hard.wav", _kick(), 44100)  # same bytes as kit/Kick-Hard.wav (found later)
    (src / "kick_broken.wav").write_bytes(b"RIFF" + b"\0" * 8000)  # passes the name/size filter, cannot decode
    report = aggregate({"pack": src}, tmp_path / "raw")
    assert report["kept"] == 3 and len(report["duplicates"]) == 1
    assert report["skipped"] == {"not a kick name": 1, "loop": 1}
    with open(tmp_path / "raw" / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "original_path", "keywords", "source", "group"]
    by_name = {r["original_path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["Kick-Hard.wav"]["keywords"] == "kick hard"
    assert by_name["Kick-Hard.wav"]["group"] == by_name["Kick-Soft.wav"]["group"] == "pack/kit/kick"
    for r in rows:
        assert (tmp_path / "raw" / r["filename"]).is_file() and len(r["filename"].split("_", 1)[0]) == 10
    with pytest.raises(AudioLoadError, match="kick_broken.wav"):
        preprocess(tmp_path / "raw", tmp_path / "out_err", on_bad_file="error", progress=False)
    with pytest.warns(UserWarning, match="kick_broken.wav"):
        m = preprocess(tmp_path / "raw", tmp_path / "out", on_bad_file="skip", progress=False)
    assert m["n_clips"] == 2 and [s["original_path"].endswith("kick_broken.wav") for s in m["skipped"]] == [True]
    assert np.load(tmp_path / "out" / "audio.npy").shape == (2, 88200)
    assert np.load(tmp_path / "out" / "mel.npy").shape == (2, 128, 173)
    again = preprocess(tmp_path / "raw", tmp_path / "out", progress=False)  # reused, not recomputed
    assert again["key"] == m["key"]


def test_split_keeps_drums_together_and_batches(kick_root):
    dm = KickDataModule(str(kick_root), mode="mel", batch_size=4, min_count=2)
    dm.setup()
    groups = {}
    for split, idx in dm.indices.items():
        for i in idx:
            groups.setdefault(dm.store.rows[i]["group"], set()).add(split)
    assert all(len(s) == 1 for s in groups.values()), {g: s for g, s in groups.items() if len(s) > 1}
    drum_groups = [g for g in groups if g.startswith("drums/")]
    assert len(drum_groups) == 6 and {next(iter(groups[g])) for g in drum_groups} == {"train", "val", "test"}
    batch = next(iter(dm.train_dataloader()))
    assert batch["mel"].shape == (4, 1, 128, 173) and batch["keywords"].shape == (4, len(dm.vocabulary))
    assert "synth" in dm.vocabulary.words and "kick" not in dm.vocabulary.words
    probe = dm.probe_batch(3)
    assert torch.equal(probe["index"], dm.probe_batch(3)["index"])


def test_vocoder_crops_are_hop_aligned(kick_root):
    dm = KickDataModule(str(kick_root), mode="crop", batch_size=2, crop_samples=8192, min_count=2)
    dm.setup()
    ds = dm.train_set
    hop, mel = 512, MelConfig()
    for index in (0, 5, 3 * len(ds) + 2):
        item = ds[index]
        s = ds.start_frame(index)
        k = item["index"]
        assert item["audio"].shape == (8192,) and item["mel"].shape == (128, 16)
        np.testing.assert_array_equal(item["audio"].numpy(), dm.store.waveform(k)[s * hop:(s + 16) * hop])
        np.testing.assert_array_equal(item["mel"].numpy(), dm.store.mel[k][:, s:s + 16])
        # the mel of the audio crop equals the stored frames away from the crop edges (n_fft/2 = 2 hops)
        crop_mel = mel(item["audio"])[0].numpy()
        loud = dm.store.mel[k][:, s + 3:s + 13] > np.log(1e-3)
        np.testing.assert_allclose(crop_mel[:, 3:13][loud], dm.store.mel[k][:, s + 3:s + 13][loud], atol=1e-4)
    starts = {ds.start_frame(i) for i in range(len(ds) * 3)}
    assert len(starts) > 3 and max(starts) <= 88200 // 512 - 16
    val = dm.val_set[0]
    assert val["audio"].shape == (173 * 512,) and val["mel"].shape == (128, 173)


def test_vocabulary_errors_and_unknown_warning(kick_root):
    with pytest.raises(ValueError, match="empty keyword vocabulary"):
        KickDataModule(str(kick_root), min_count=10_000).setup()
    vocab = KeywordVocabulary.build([["long", "sub"], ["long"], ["short"]], min_count=1)
    assert vocab.words == ["long", "short", "sub"]
    with pytest.warns(UserWarning, match="unknown keywords ignored: \\['wobbly'\\]"):
        hot = vocab.encode([["long", "wobbly"]], warn_unknown=True)
    assert hot.tolist() == [[1.0, 0.0, 0.0]]


def test_missing_root_says_make_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        KickDataModule(str(tmp_path / "nope")).setup()


def test_build_synthetic_writes_a_folder(tmp_path):
    dm = KickDataModule(str(tmp_path / "syn"), build_synthetic=12, min_count=2, val_fraction=0.2, test_fraction=0.2)
    dm.prepare_data()
    dm.setup()
    manifest = json.loads((tmp_path / "syn" / "manifest.json").read_text())
    assert manifest["n_clips"] == 12 and sum(len(v) for v in dm.indices.values()) == 12
