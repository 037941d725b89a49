"""Token data: crops (random per epoch, reproducible across runs, fixed for validation, the first-window bug mode),
splits, coverage / unigram baseline, and bad input named clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.models.tokenlm.data import (
    EpochCropSampler,
    TokenDataError,
    TokenDataModule,
    TokenSet,
    unigram_cross_entropy,
    vocabulary_coverage,
)

from .conftest import write_tokens


def _many(tmp_path, n_files=6, frames=200, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 16, (3, n_files * frames)).astype(np.int16)
    files = [{"source": f"{'melodic' if i % 2 else 'percussive'}/f{i}.wav", "offset": i * frames, "n_frames": frames}
             for i in range(n_files)]
    return write_tokens(tmp_path / "tok", tokens, files=files)


def _dm(root, **kw) -> TokenDataModule:
    cfg = dict(crop_frames=20, batch_size=4, val_fraction=0.2, test_fraction=0.0)
    cfg.update(kw)
    dm = TokenDataModule(str(root), **cfg)
    dm.setup()
    return dm


def _starts(dm: TokenDataModule, epoch: int) -> list[int]:
    return [dm.train_set.locate((i, epoch))[1] for i in range(len(dm.train_set))]


def test_crops_differ_between_epochs_and_repeat_across_runs(tmp_path):
    root = _many(tmp_path)
    a, b = _dm(root), _dm(root)
    assert _starts(a, 0) == _starts(b, 0)  # identical across runs
    assert _starts(a, 0) != _starts(a, 1)  # different every epoch
    s = EpochCropSampler(len(a.train_set), seed=0)
    s.set_epoch(3)
    keys = list(s)
    assert {k[1] for k in keys} == {3} and sorted(k[0] for k in keys) == list(range(len(a.train_set)))
    s2 = EpochCropSampler(len(a.train_set), seed=0)
    s2.set_epoch(4)
    assert [k[0] for k in s2] != [k[0] for k in keys]
    # validation crops are fixed (independent of epoch and of how often they are read)
    v = [a.val_set[i]["start"] for i in range(len(a.val_set))]
    assert v == [b.val_set[i]["start"] for i in range(len(b.val_set))]
    item = a.train_set[(2, 1)]
    f, start = a.train_set.locate((2, 1))
    assert torch.equal(item["codes"], torch.from_numpy(np.asarray(a.tokens.codes(f)[:, start : start + 20], dtype=np.int64)))


def test_first_window_mode_reproduces_the_bug(tmp_path):
    dm = _dm(_many(tmp_path), crop_mode="first")
    assert set(_starts(dm, 0)) == {0} and _starts(dm, 0) == _starts(dm, 5)


def test_lightning_sets_the_epoch(tmp_path):
    """Through a real Trainer: the starts seen in epoch 0 and epoch 1 differ (Lightning calls set_epoch)."""
    import lightning as L

    dm = _dm(_many(tmp_path), batch_size=2)
    seen: list[list[int]] = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def on_train_epoch_start(self):
            seen.append([])

        def training_step(self, batch, i):
            seen[-1].extend(batch["starts"].tolist())
            return self.w * 0.0 + self.w.sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, accelerator="cpu")
    trainer.fit(Probe(), train_dataloaders=dm.train_dataloader())
    assert len(seen) == 2 and sorted(seen[0]) != sorted(seen[1])


def test_splits_ladder_overfit_and_short_files(tmp_path):
    root = _many(tmp_path, n_files=10)
    full = _dm(root)
    assert len(full.val_files) == 2 and len(full.train_files) == 8
    assert not {f.source for f in full.val_files} & {f.source for f in full.train_files}
    one = _dm(root, max_train_files=1)
    three = _dm(root, max_train_files=3)
    assert one.train_files == full.train_files[:1] and three.train_files == full.train_files[:3]  # nested
    of = _dm(root, overfit_file=4)
    assert of.train_files == of.val_files == [of.tokens.files[4]]
    assert set(_starts(of, 0) + _starts(of, 7)) == {0}
    # tags from the source folders; a tag filter keeps a subset of the same split
    assert full.tokens.files[1].tags == ["melodic"]
    wide = _dm(root, val_fraction=0.4)
    mel = _dm(root, val_fraction=0.4, include_tags=["melodic"])
    src = lambda fs: {f.source for f in fs}  # noqa: E731
    assert src(mel.val_files) <= src(wide.val_files) and src(mel.train_files) <= src(wide.train_files)
    assert mel.val_files and mel.train_files
    assert all(f.tags == ["melodic"] for f in mel.train_files + mel.val_files)
    # short files: skipped with a warning, or refused
    tokens = np.zeros((3, 215), dtype=np.int16)
    files = [{"source": "long.wav", "offset": 0, "n_frames": 200}, {"source": "short.wav", "offset": 200, "n_frames": 15}]
    root2 = write_tokens(tmp_path / "short", tokens, files=files)
    dm = _dm(root2, crop_frames=20, min_segment_ratio=0.8)
    assert {f.source for f in dm.train_files + dm.val_files} == {"long.wav"}
    with pytest.raises(TokenDataError, match=r"0.8 x 20 = 16 frames: short.wav \(15 frames\)"):
        _dm(root2, crop_frames=20, on_short="error")
    root3 = write_tokens(tmp_path / "allshort", tokens[:, :15], files=[{"source": "s.wav", "offset": 0, "n_frames": 15}])
    with pytest.raises(TokenDataError, match="no file left"):
        _dm(root3, crop_frames=100)


def test_padding_of_short_crops_is_masked(tmp_path):
    tokens = np.arange(3 * 30).reshape(3, 30).astype(np.int16) % 16
    root = write_tokens(tmp_path / "t", tokens, files=[{"source": "x.wav", "offset": 0, "n_frames": 18},
                                                        {"source": "y.wav", "offset": 18, "n_frames": 12}])
    dm = _dm(root, crop_frames=20, min_segment_ratio=0.5, val_fraction=0.0)
    item = dm.train_set[(0, 0)] if dm.train_set.files[0].source == "x.wav" else dm.train_set[(1, 0)]
    assert item["length"] == 18 and item["ended"]
    assert (item["codes"][:, 18:] == 0).all()


def test_coverage_and_unigram(tmp_path):
    tokens = np.zeros((2, 40), dtype=np.int16)
    tokens[0, :20] = np.arange(20) % 4  # codebook 0 uses 4 codes in the training file
    root = write_tokens(tmp_path / "t", tokens, files=[{"source": "a.wav", "offset": 0, "n_frames": 20},
                                                        {"source": "b.wav", "offset": 20, "n_frames": 20}])
    ts = TokenSet(root)
    train, held = [ts.files[0]], [ts.files[1]]
    assert vocabulary_coverage(ts, train) == [4 / 16, 1 / 16]
    ce = unigram_cross_entropy(ts, train, held)
    # codebook 1: code 0 seen 20 times (+1 smoothing) out of 20 + 16 -> held-out all zeros
    assert ce[1] == pytest.approx(-np.log(21 / 36))
    assert ce[0] == pytest.approx(-np.log(6 / 36))  # code 0: 5 times in training + 1


def test_bad_inputs_name_file_and_numbers(tmp_path):
    bad = np.zeros((3, 50), dtype=np.int16)
    bad[1, 30] = 16
    root = write_tokens(tmp_path / "range", bad, files=[{"source": "ok.wav", "offset": 0, "n_frames": 25},
                                                         {"source": "bad.wav", "offset": 25, "n_frames": 25}])
    with pytest.raises(TokenDataError, match=r"'bad.wav' holds token 16 at codebook 1, frame 5; ids must be in 0..15"):
        TokenSet(root)
    root = write_tokens(tmp_path / "empty", np.zeros((3, 10), dtype=np.int16),
                        files=[{"source": "e.wav", "offset": 0, "n_frames": 0}])
    with pytest.raises(TokenDataError, match="'e.wav' has 0 frames"):
        TokenSet(root)
    root = write_tokens(tmp_path / "kq", np.zeros((3, 10), dtype=np.int16), manifest={"n_q": 4})
    with pytest.raises(TokenDataError, match="K=3 codebooks but .* n_q=4"):
        TokenSet(root)
    root = write_tokens(tmp_path / "card", np.zeros((3, 10), dtype=np.int16))
    with pytest.raises(TokenDataError, match="cardinality 16 but the model expects 1024"):
        TokenSet(root, card=1024)
    with pytest.raises(FileNotFoundError, match="prepare codec_tokens"):
        TokenSet(tmp_path / "nowhere")
    np.save(tmp_path / "three_d.npy", np.zeros((1, 2, 3), dtype=np.int16))
    (tmp_path / "manifest.json").write_text('{"cardinality": 16}')
    with pytest.raises(TokenDataError, match=r"expected tokens \[K, T\], got shape \(1, 2, 3\)"):
        TokenSet(tmp_path / "three_d.npy")
