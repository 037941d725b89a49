"""``.alc`` container, chunked / streaming inference and the compression CLI (tiny checkpoints from conftest)."""

from __future__ import annotations

import json
import math
from itertools import cycle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab.audio.io import load_audio
from audiolab.models.codec import cli
from audiolab.models.codec.container import (
    AlcHeader,
    ContainerError,
    bits_per_code,
    header_bytes,
    read_alc,
    write_alc,
)
from audiolab.models.codec.infer import (
    StreamingDecoder,
    StreamingEncoder,
    decode_long,
    encode_long,
    load_codec,
    model_id,
)

SR = 16000
PCM_STEP = 1.0 / 32768


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ckpts(codec_ckpt) -> dict[str, Path]:
    return {
        "causal": codec_ckpt("causal", causal=True, lstm=1),
        "causal_other": codec_ckpt("causal_other", seed=7, causal=True, lstm=1),
        "noncausal": codec_ckpt("noncausal", causal=False, lstm=0),
        # 160-sample (20-frame) segments: several segments in a fraction of a second
        "segrms": codec_ckpt("segrms", causal=False, lstm=0, normalization="segment_rms", segment_seconds=0.01),
        "noncausal_lstm": codec_ckpt("noncausal_lstm", causal=False, lstm=1),
        # 1024 bins = 10 bits per code, hop 40 = 400 frames/s
        "bits10": codec_ckpt("bits10", causal=True, lstm=0, ratios=(8, 5), bins=1024),
    }


@pytest.fixture(scope="module")
def codecs(ckpts) -> dict:
    return {name: load_codec(path) for name, path in ckpts.items()}


def _noise(length: int, batch: int = 1, seed: int = 0, amp: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return amp * torch.randn(batch, length, generator=g)


def _write_wav(path: Path, audio: np.ndarray | torch.Tensor, sr: int = SR) -> Path:
    arr = np.asarray(audio, dtype=np.float32)
    sf.write(str(path), arr.T if arr.ndim == 2 else arr, sr, subtype="PCM_16")
    return path


def _edit_header(blob: bytes, **changes) -> bytes:
    """An ``.alc`` file whose JSON header fields are replaced by ``changes`` (scales + payload and CRC untouched)."""
    meta_len = int.from_bytes(blob[6:10], "big")
    meta = json.dumps({**json.loads(blob[10:10 + meta_len]), **changes}, sort_keys=True).encode()
    return blob[:6] + len(meta).to_bytes(4, "big") + meta + blob[10 + meta_len:]


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------------------------------------------- 1. container
@pytest.mark.parametrize(
    ("n_q", "bins", "frames"),
    [(4, 1024, 37), (3, 2048, 11), (8, 1000, 50), (2, 2, 13), (5, 17, 9), (1, 65536, 7), (6, 3, 1), (2, 16, 0)],
)
def test_container_round_trip_bit_exact(tmp_path, n_q, bins, frames) -> None:
    rng = np.random.default_rng(bins * 100 + n_q)
    codes = rng.integers(0, bins, size=(n_q, frames))
    if frames:
        codes[0, 0], codes[-1, -1] = bins - 1, 0  # both extremes of the code range
    # one 8-sample segment per frame: a scale per frame, incl. values float16 or a decimal print would not keep
    scales = rng.lognormal(0.0, 3.0, size=frames).astype(np.float32)
    scales[:3] = np.array([1e-8, 0.123456789, np.pi], dtype=np.float32)[: len(scales[:3])]
    header = AlcHeader(model_id="0123456789abcdef", sample_rate=SR, channels=1, hop_length=8, n_q=n_q, bins=bins,
                       n_frames=frames, length=max(0, frames * 8 - 3), normalization="segment_rms",
                       segment_samples=8, n_scales=frames)
    path = tmp_path / "x.alc"
    size = write_alc(path, header, codes, scales)
    assert size == path.stat().st_size
    got_header, got_codes, got_scales = read_alc(path)
    assert got_header.bits == bits_per_code(bins) == math.ceil(math.log2(bins))
    assert got_header.n_frames == frames and got_header.n_q == n_q and got_header.bins == bins
    assert got_codes.shape == (n_q, frames)
    np.testing.assert_array_equal(got_codes, codes)
    if frames:
        assert got_scales is not None and got_scales.dtype == np.float32
        np.testing.assert_array_equal(got_scales, scales)  # float32 exact
    else:
        assert got_scales is None
    assert got_header.payload_bytes == math.ceil(frames * n_q * got_header.bits / 8)


@pytest.mark.parametrize(("bins", "bits"), [(1024, 10), (2048, 11), (1000, 10), (2, 1), (1025, 11), (3, 2)])
def test_bits_per_code(bins, bits) -> None:
    assert bits_per_code(bins) == bits


def test_container_without_scales_and_out_of_range_codes(tmp_path) -> None:
    header = AlcHeader(model_id="m", sample_rate=SR, channels=1, hop_length=8, n_q=2, bins=1000, n_frames=3, length=24)
    codes = np.array([[0, 999, 5], [1, 2, 3]])
    write_alc(tmp_path / "a.alc", header, codes)
    h, c, s = read_alc(tmp_path / "a.alc")
    assert s is None and h.n_scales == 0
    np.testing.assert_array_equal(c, codes)
    for bad in (np.array([[0, 1000, 5], [1, 2, 3]]), np.array([[0, -1, 5], [1, 2, 3]])):
        with pytest.raises(ValueError, match="codes"):
            write_alc(tmp_path / "b.alc", header, bad)
    assert not (tmp_path / "b.alc").exists()

    # a self-contradictory header is refused on write (3 frames cannot hold 100 samples at hop 8) ...
    header.length = 100
    with pytest.raises(ValueError, match="length 100"):
        write_alc(tmp_path / "b.alc", header, codes)
    assert not (tmp_path / "b.alc").exists()
    # ... and on read, where the CRC (scales + payload only) cannot see it
    blob = (tmp_path / "a.alc").read_bytes()
    for field, value, needle in (("length", 100, "length 100"), ("n_frames", 4, "n_frames 4"),
                                 ("bits", 11, "bits 11"), ("n_q", 3, "payload_bytes"), ("bins", 1024, None),
                                 ("hop_length", 0, "hop_length 0"), ("n_scales", 1, "n_scales 1"),
                                 ("extra_field", 1, "unreadable header")):
        (tmp_path / "e.alc").write_bytes(_edit_header(blob, **{field: value}))
        if needle is None:  # consistent edit (1000 -> 1024 bins is still 10 bits): decodes to the same codes
            np.testing.assert_array_equal(read_alc(tmp_path / "e.alc")[1], codes)
            continue
        with pytest.raises(ContainerError, match=needle) as err:
            read_alc(tmp_path / "e.alc")
        assert str(tmp_path / "e.alc") in str(err.value)


# ---------------------------------------------------------------------------------------------------- 2. size
def test_size_matches_bitrate(tmp_path, codecs, ckpts, capsys) -> None:
    codec = codecs["bits10"]
    assert codec.bins == 1024 and codec.frame_rate == 400
    n_q, bits, seconds = codec.n_q, 10, 10.0
    frames = int(seconds * codec.frame_rate)
    nominal_bits = n_q * bits * codec.frame_rate * seconds
    rng = np.random.default_rng(0)
    header = AlcHeader(model_id=model_id(codec), sample_rate=SR, channels=1, hop_length=codec.hop_length, n_q=n_q,
                       bins=1024, n_frames=frames, length=int(seconds * SR))
    path = tmp_path / "random.alc"
    size = write_alc(path, header, rng.integers(0, 1024, size=(n_q, frames)))
    h, _, _ = read_alc(path)
    assert h.payload_bytes == math.ceil(frames * n_q * 10 / 8)
    assert size - header_bytes(path) == h.payload_bytes
    assert size <= nominal_bits / 8 * 1.02 + header_bytes(path)

    # the CLI on a real 10 s file
    wav = _write_wav(tmp_path / "ten.wav", _noise(int(seconds * SR))[0].numpy())
    alc = tmp_path / "ten.alc"
    rc, out, err = _run(capsys, "encode", wav, alc, "--ckpt", ckpts["bits10"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["nominal_kbps"] == pytest.approx(n_q * bits * codec.frame_rate / 1000)
    assert report["n_frames"] == frames and report["bytes"] == alc.stat().st_size
    h, codes, _ = read_alc(alc)
    assert h.payload_bytes == math.ceil(frames * n_q * 10 / 8)
    assert alc.stat().st_size <= nominal_bits / 8 * 1.02 + header_bytes(alc)
    header_kbps = header_bytes(alc) * 8 / seconds / 1000
    assert report["nominal_kbps"] <= report["actual_kbps"] <= report["nominal_kbps"] * 1.02 + header_kbps
    assert len(np.unique(codes)) > 50  # real, diverse codes, not a degenerate constant stream


# ---------------------------------------------------------------------------------------------------- 3. CLI round trip
@pytest.mark.parametrize(("name", "chunk"), [("causal", "30"), ("causal", "0.01"), ("noncausal", "0.013"),
                                             ("segrms", "0.02"), ("noncausal_lstm", "0")])
def test_cli_encode_decode_end_to_end(tmp_path, ckpts, codecs, capsys, name, chunk) -> None:
    length = 3 * SR // 10 + 3  # not a multiple of the hop (or of a segment)
    wav = _write_wav(tmp_path / "in.wav", _noise(length, seed=3)[0].numpy())
    alc, out_wav = tmp_path / "x.alc", tmp_path / "out.wav"
    rc, out, err = _run(capsys, "encode", wav, alc, "--ckpt", ckpts[name], "--chunk-seconds", chunk)
    assert rc == 0, err
    rc, out, err = _run(capsys, "decode", alc, out_wav, "--ckpt", ckpts[name], "--chunk-seconds", chunk)
    assert rc == 0, err
    decoded, sr = sf.read(str(out_wav), dtype="float32")
    assert sr == SR and decoded.shape == (length,)

    codec = codecs[name]
    x = load_audio(wav, SR)
    codes, scales = codec.encode(x[None])
    _, file_codes, file_scales = read_alc(alc)
    np.testing.assert_array_equal(file_codes, codes[0].numpy())
    if scales is not None:
        np.testing.assert_array_equal(file_scales, scales[0].numpy())
    ref = codec.decode(codes, scales, length)[0, 0].clamp(-1, 1).numpy()
    assert np.abs(ref).max() > 0.01  # a real signal, not silence
    np.testing.assert_allclose(decoded, ref, rtol=0, atol=PCM_STEP + 1e-4)


# ---------------------------------------------------------------------------------------------------- 4. chunked
@pytest.mark.parametrize("name", ["causal", "noncausal", "segrms"])
@pytest.mark.parametrize("length", [2000, 2003])
def test_chunked_equals_whole_file(codecs, name, length) -> None:
    codec = codecs[name]
    x = _noise(length, batch=2, seed=length)
    codes, scales = codec.encode(x)
    y = codec.decode(codes, scales, length)
    assert len(torch.unique(codes)) > 8
    # 2, 20, 25, 100, 27 frames (some divide the 250/251 frames, some do not) and one chunk longer than the file
    for chunk_seconds in (0.001, 0.01, 0.0125, 0.05, 0.0137, 10.0):
        c, s = encode_long(codec, x, chunk_seconds=chunk_seconds)
        assert torch.equal(c, codes), (name, chunk_seconds)
        if scales is None:
            assert s is None
        else:
            assert torch.equal(s, scales)
        c2, _ = encode_long(codec, x, n_q=2, chunk_seconds=chunk_seconds)
        assert torch.equal(c2, codes[:, :2])
        yl = decode_long(codec, codes, scales, length, chunk_seconds)
        assert yl.shape == y.shape
        torch.testing.assert_close(yl, y, rtol=0, atol=1e-5)


def test_chunked_noncausal_lstm_refused(codecs) -> None:
    codec = codecs["noncausal_lstm"]
    x = _noise(4000, seed=1)
    codes, _ = codec.encode(x)
    with pytest.raises(ValueError, match="chunk_seconds=0"):
        encode_long(codec, x, chunk_seconds=0.01)
    with pytest.raises(ValueError, match="chunk_seconds=0"):
        decode_long(codec, codes, None, 4000, chunk_seconds=0.01)
    # chunk_seconds=0 (whole file) works, and so does a chunk longer than the file (nothing to chunk)
    for chunk_seconds in (0, 30.0):
        c, _ = encode_long(codec, x, chunk_seconds=chunk_seconds)
        assert torch.equal(c, codes)
        torch.testing.assert_close(decode_long(codec, codes, None, 4000, chunk_seconds),
                                   codec.decode(codes, None, 4000), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- 5. streaming
def test_streaming_encoder_equals_whole_file(codecs) -> None:
    codec = codecs["causal"]
    assert codec.hop_length == 8
    length = 2011
    x = _noise(length, batch=2, seed=5)
    codes, _ = codec.encode(x)
    for sizes in ([1, 7, 8, 100, 3], [13], [1], [3, 250, 5, 1, 1, 9]):
        enc = StreamingEncoder(codec)
        pieces, pos = [], 0
        for size in cycle(sizes):
            if pos >= length:
                break
            piece = enc.push(x[:, None, pos:pos + size])
            assert piece.shape[:2] == (2, codec.n_q)
            pieces.append(piece)
            pos += size
        pieces.append(enc.flush())
        assert torch.equal(torch.cat(pieces, dim=-1), codes), sizes
    # n_q < all codebooks
    enc = StreamingEncoder(codec, n_q=3)
    got = torch.cat([enc.push(x[:, None, i:i + 77]) for i in range(0, length, 77)] + [enc.flush()], dim=-1)
    assert torch.equal(got, codes[:, :3])


def test_streaming_decoder_equals_whole_file(codecs) -> None:
    codec = codecs["causal"]
    codes, _ = codec.encode(_noise(1600, batch=2, seed=6))
    y = codec.decode(codes)
    n = codes.shape[-1]
    for sizes in ([1], [1, 3, 2, 7, 11], [64]):
        dec = StreamingDecoder(codec)
        out, pos = [], 0
        for size in cycle(sizes):
            if pos >= n:
                break
            piece = dec.push(codes[..., pos:pos + size])
            assert piece.shape[-1] == min(size, n - pos) * codec.hop_length
            out.append(piece)
            pos += size
        torch.testing.assert_close(torch.cat(out, dim=-1), y, rtol=0, atol=1e-5)


def test_streaming_refuses_non_causal(codecs) -> None:
    for name in ("noncausal", "noncausal_lstm", "segrms"):
        with pytest.raises(ValueError, match="causal"):
            StreamingEncoder(codecs[name])
        with pytest.raises(ValueError, match="causal"):
            StreamingDecoder(codecs[name])


# ---------------------------------------------------------------------------------------------------- 6. bad input
def _encoded(tmp_path, ckpts, capsys, name: str = "causal") -> Path:
    wav = _write_wav(tmp_path / "ok.wav", _noise(1000, seed=9)[0].numpy())
    alc = tmp_path / "ok.alc"
    rc, _, err = _run(capsys, "encode", wav, alc, "--ckpt", ckpts[name])
    assert rc == 0, err
    return alc


def test_cli_bad_audio_inputs(tmp_path, ckpts, capsys) -> None:
    ckpt = ckpts["causal"]
    empty = _write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    rc, _, err = _run(capsys, "encode", empty, tmp_path / "e.alc", "--ckpt", ckpt)
    assert rc == 2 and str(empty) in err and "empty" in err

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    rc, _, err = _run(capsys, "encode", corrupt, tmp_path / "c.alc", "--ckpt", ckpt)
    assert rc == 2 and str(corrupt) in err

    missing = tmp_path / "missing.wav"
    rc, _, err = _run(capsys, "encode", missing, tmp_path / "m.alc", "--ckpt", ckpt)
    assert rc == 2 and str(missing) in err

    wrong_rate = _write_wav(tmp_path / "cd.wav", _noise(4410, seed=2)[0].numpy(), sr=44100)
    rc, _, err = _run(capsys, "encode", wrong_rate, tmp_path / "w.alc", "--ckpt", ckpt)
    assert rc == 2 and str(wrong_rate) in err and "44100" in err and "--resample" in err
    for name in ("e.alc", "c.alc", "m.alc", "w.alc"):
        assert not (tmp_path / name).exists()  # nothing written on failure
    rc, _, err = _run(capsys, "encode", wrong_rate, tmp_path / "w.alc", "--ckpt", ckpt, "--resample")
    assert rc == 0, err
    rc, _, err = _run(capsys, "decode", tmp_path / "w.alc", tmp_path / "w.wav", "--ckpt", ckpt)
    assert rc == 0, err
    assert sf.info(str(tmp_path / "w.wav")).frames == 1600 and sf.info(str(tmp_path / "w.wav")).samplerate == SR


@pytest.mark.parametrize("bandwidth", ["1000", "0.01"])
def test_cli_unsupported_bandwidth(tmp_path, ckpts, codecs, capsys, bandwidth) -> None:
    wav = _write_wav(tmp_path / "a.wav", _noise(800)[0].numpy())
    rc, _, err = _run(capsys, "encode", wav, tmp_path / "a.alc", "--ckpt", ckpts["causal"], "--bandwidth", bandwidth)
    assert rc == 2 and "--bandwidth" in err and "supported" in err
    assert str(codecs["causal"].supported_bandwidths()) in err
    assert not (tmp_path / "a.alc").exists()


def test_cli_bandwidth_picks_n_q(tmp_path, ckpts, codecs, capsys) -> None:
    codec = codecs["causal"]  # 16 bins = 4 bits at 2000 frames/s: 8 kbps per codebook
    wav = _write_wav(tmp_path / "a.wav", _noise(800)[0].numpy())
    rc, out, err = _run(capsys, "encode", wav, tmp_path / "a.alc", "--ckpt", ckpts["causal"], "--bandwidth", "17")
    assert rc == 0, err
    assert json.loads(out)["n_q"] == 2 == codec.bandwidth_to_n_q(17)
    h, codes, _ = read_alc(tmp_path / "a.alc")
    assert h.n_q == 2 and codes.shape[0] == 2
    rc, _, err = _run(capsys, "decode", tmp_path / "a.alc", tmp_path / "a_out.wav", "--ckpt", ckpts["causal"])
    assert rc == 0, err


def test_cli_bad_alc_files(tmp_path, ckpts, capsys) -> None:
    ckpt = ckpts["causal"]
    alc = _encoded(tmp_path, ckpts, capsys)
    blob = alc.read_bytes()
    cases = {}

    truncated = tmp_path / "truncated.alc"
    truncated.write_bytes(blob[:-3])
    cases[truncated] = "truncated"

    tiny = tmp_path / "tiny.alc"
    tiny.write_bytes(blob[:5])
    cases[tiny] = "truncated"

    flipped = bytearray(blob)
    flipped[-2] ^= 0x10
    corrupted = tmp_path / "corrupted.alc"
    corrupted.write_bytes(bytes(flipped))
    cases[corrupted] = "checksum"

    magic = tmp_path / "magic.alc"
    magic.write_bytes(b"RIFF" + blob[4:])
    cases[magic] = "not an .alc"

    # a header edited behind the CRC's back (the CRC covers scales + payload): length no longer fits n_frames
    edited = tmp_path / "edited.alc"
    edited.write_bytes(_edit_header(blob, length=1080))
    cases[edited] = "length"

    empty = tmp_path / "empty.alc"
    empty.write_bytes(b"")
    cases[empty] = "truncated or empty"

    for path, needle in cases.items():
        for argv in (["decode", path, tmp_path / "o.wav", "--ckpt", ckpt], ["info", path]):
            rc, out, err = _run(capsys, *argv)
            assert rc == 2, (path, argv[0], out)
            assert str(path) in err and needle in err, (path, err)
        assert not (tmp_path / "o.wav").exists()

    rc, _, err = _run(capsys, "decode", tmp_path / "nope.alc", tmp_path / "o.wav", "--ckpt", ckpt)
    assert rc == 2 and str(tmp_path / "nope.alc") in err


def test_cli_checkpoint_errors(tmp_path, ckpts, codecs, capsys) -> None:
    alc = _encoded(tmp_path, ckpts, capsys)
    rc, _, err = _run(capsys, "decode", alc, tmp_path / "o.wav", "--ckpt", ckpts["causal_other"])
    assert rc == 2 and str(alc) in err and "model" in err
    assert model_id(codecs["causal"]) in err and model_id(codecs["causal_other"]) in err
    assert model_id(codecs["causal"]) != model_id(codecs["causal_other"])

    missing = tmp_path / "no_such.ckpt"
    for argv in (["encode", tmp_path / "ok.wav", tmp_path / "n.alc", "--ckpt", missing],
                 ["decode", alc, tmp_path / "o.wav", "--ckpt", missing]):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and str(missing) in err
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "n.alc").exists()


# ---------------------------------------------------------------------------------------------------- 7. info
def test_cli_info_prints_header(tmp_path, ckpts, codecs, capsys) -> None:
    alc = _encoded(tmp_path, ckpts, capsys)
    rc, out, err = _run(capsys, "info", alc)
    assert rc == 0, err
    info = json.loads(out)
    header, codes, _ = read_alc(alc)
    codec = codecs["causal"]
    assert info["model_id"] == model_id(codec) == header.model_id
    assert info["sample_rate"] == SR and info["hop_length"] == 8 and info["bins"] == 16 and info["bits"] == 4
    assert info["n_q"] == 4 and info["length"] == 1000 and info["n_frames"] == 125 == codes.shape[1]
    assert info["payload_bytes"] == 125 * 4 * 4 // 8 and info["normalization"] == "none"


def test_cli_stereo_input_warned_anti_phase_refused(tmp_path, ckpts, capsys, caplog) -> None:
    """Was: stereo silently mixed to mono, and anti-phase stereo (L = -R) encoded as silence with exit 0."""
    import logging

    ckpt = ckpts["causal"]
    left = _noise(1600, seed=3)[0].numpy()
    stereo = _write_wav(tmp_path / "stereo.wav", np.stack([left, 0.5 * left]))
    with caplog.at_level(logging.WARNING, logger="audiolab"):
        rc, _, err = _run(capsys, "encode", stereo, tmp_path / "stereo.alc", "--ckpt", ckpt)
    assert rc == 0, err
    assert "2 channels mixed to mono" in caplog.text and "--channel N" in caplog.text

    anti = _write_wav(tmp_path / "anti.wav", np.stack([left, -left]))
    rc, _, err = _run(capsys, "encode", anti, tmp_path / "anti.alc", "--ckpt", ckpt)
    assert rc == 2 and err.count("\n") == 1 and str(anti) in err, err
    assert "cancel when mixed to mono" in err and "--channel 0" in err
    assert not (tmp_path / "anti.alc").exists()
    # --channel 1 encodes exactly what a mono file of that channel gives
    mono = _write_wav(tmp_path / "right.wav", -left)
    for src, dst, extra in ((anti, "ch1.alc", ["--channel", "1"]), (mono, "mono.alc", [])):
        rc, _, err = _run(capsys, "encode", src, tmp_path / dst, "--ckpt", ckpt, *extra)
        assert rc == 0, err
    assert (tmp_path / "ch1.alc").read_bytes() == (tmp_path / "mono.alc").read_bytes()
    rc, _, err = _run(capsys, "encode", anti, tmp_path / "x.alc", "--ckpt", ckpt, "--channel", "2")
    assert rc == 2 and "no channel 2" in err


def test_cli_negative_chunk_seconds_refused(tmp_path, ckpts, capsys) -> None:
    ckpt = ckpts["causal"]
    wav = _write_wav(tmp_path / "a.wav", _noise(800)[0].numpy())
    rc, _, err = _run(capsys, "encode", wav, tmp_path / "a.alc", "--ckpt", ckpt, "--chunk-seconds", "-1")
    assert rc == 2 and err == "error: --chunk-seconds -1.0: must be >= 0 (seconds per chunk; 0 = whole file)\n"
    assert not (tmp_path / "a.alc").exists()
    rc, _, err = _run(capsys, "encode", wav, tmp_path / "a.alc", "--ckpt", ckpt)
    assert rc == 0, err
    rc, _, err = _run(capsys, "decode", tmp_path / "a.alc", tmp_path / "out.wav", "--ckpt", ckpt, "--chunk-seconds", "-1")
    assert rc == 2 and "--chunk-seconds -1.0: must be >= 0" in err and not (tmp_path / "out.wav").exists()
