"""Smoke test of ``python -m audiolab.bench codec --quick`` (real model sizes, tiny input; correctness, not timing)
and of the inference copy it benchmarks (:func:`prepare_for_inference`)."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from audiolab.bench.__main__ import main as bench_main
from audiolab.models.codec import bench as codec
from audiolab.models.codec.infer import (
    StreamingDecoder,
    StreamingEncoder,
    _ShortInputNativeLSTM,
    model_id,
    prepare_for_inference,
)
from audiolab.models.codec.model import Codec

try:
    import encodec  # noqa: F401

    HAS_ENCODEC = True
except Exception:  # the bench skips the peer exactly when this import fails
    HAS_ENCODEC = False

TINY = ["--quick", "--device", "cpu", "--threads", "1", "--seconds", "0.5", "--warmup", "1", "--repeats", "1",
        "--stream-seconds", "0.24", "--stream-warmup-seconds", "0.04"]  # fmt: skip


@pytest.fixture
def one_thread():
    """Tiny ops on a shared 2-core machine: more threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values)


def test_codec_bench_quick(tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the codec bench must not touch the network (peer built with pretrained=False)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    threads = torch.get_num_threads()
    out = tmp_path / "sub" / "bench.json"
    assert bench_main(["codec", *TINY, "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # restored
    result = json.loads(out.read_text())
    stdout = capsys.readouterr().out

    for key in ("benchmark", "date", "device", "environment", "settings", "peer", "parameters", "checks", "memory",
                "threads"):
        assert key in result, key
    assert result["benchmark"] == "codec" and result["device"]["description"] and result["environment"]["torch"]
    assert result["settings"]["threads"] == [1] and result["settings"]["n_q"] == 8
    assert result["settings"]["bandwidth_kbps"] == 6.0
    ours = result["parameters"]["ours"]
    assert (ours["encoder"], ours["decoder"]) == (7_425_792, 7_426_018)
    assert result["memory"]["process"]["peak_bytes"] > 0

    ch = result["checks"]
    assert ch["ours_prepared_vs_ours"]["codes_equal"]
    assert ch["ours_prepared_vs_ours"]["decode_max_abs_diff"] < 1e-5

    sec = result["threads"]["1"]
    models = sec["whole_file"]["models"]
    expected = set(codec.MODELS) if HAS_ENCODEC else {"ours", "ours_prepared"}
    assert set(models) == expected
    for m in models.values():
        assert _positive(m["encode_ms"], m["decode_ms"], m["encode_real_time_factor"], m["decode_real_time_factor"])
    st = sec["streaming"]["models"]
    assert set(st) == set(codec.STREAM_MODELS)
    for m in st.values():
        assert m["chunks"] > 0 and m["codes_equal_whole_file"] and m["audio_max_abs_diff_whole_file"] < 1e-4
        for part in ("encode", "decode", "round_trip"):
            assert _positive(m[part]["real_time_factor"], m[part]["chunk_ms_median"], m[part]["chunk_ms_max"])

    if HAS_ENCODEC:
        assert result["peer"]["skipped"] is None and result["peer"]["version"]
        assert result["parameters"]["peer"]["encoder"] == ours["encoder"]
        assert result["parameters"]["peer"]["decoder"] == ours["decoder"]
        assert result["parameters"]["equal_size"]
        assert ch["n_q"] == {"ours": 8, "peer": 8} and ch["frames"]["ours"] == ch["frames"]["peer"]
        # same weights + same padding -> same function (argmax near-ties may rarely flip a code)
        assert ch["ours_vs_peer"]["codes_agreement_all_layers"] > 0.95
        assert ch["ours_vs_peer"]["decode_same_codes_max_abs_diff"] < 1e-4
        ratios = sec["whole_file"]["time_ratios"]
        for name in ("ours_over_peer", "prepared_over_peer_baked", "prepared_over_peer"):
            assert _positive(ratios[name]["encode"], ratios[name]["decode"])
        assert "ours_over_peer" in stdout
    else:
        assert "import encodec" in result["peer"]["skipped"]
        assert "peer skipped" in stdout
    assert "streaming" in stdout and "JSON:" in stdout


def _tiny_codec() -> Codec:
    torch.manual_seed(0)
    return Codec(sample_rate=8000, seanet=dict(dimension=8, n_filters=4, ratios=[2, 2], lstm=1, causal=True,
                                               true_skip=False),
                 quantizer=dict(n_q=4, bins=16)).eval()  # fmt: skip


def test_prepare_for_inference_is_an_equivalent_copy(one_thread):
    codec = _tiny_codec()
    ident = model_id(codec)
    prepared = prepare_for_inference(codec)
    # the original is untouched (deepcopy shares the parametrized class: baking must not break it)
    assert model_id(codec) == ident
    assert type(codec.encoder.layers[0].conv).__name__ == "ParametrizedConv1d"
    assert type(prepared.encoder.layers[0].conv) is torch.nn.Conv1d
    assert isinstance(prepared.encoder.layers[-3].lstm, _ShortInputNativeLSTM)
    assert not any(p.requires_grad for p in prepared.parameters())

    x = 0.1 * torch.randn(2, 1, 4 * 25, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        codes, _ = codec.encode(x)
        codes_p, _ = prepared.encode(x)
        y, y_p = codec.decode(codes), prepared.decode(codes)
    assert torch.equal(codes, codes_p)
    torch.testing.assert_close(y_p, y, atol=1e-5, rtol=1e-5)

    # streaming with the prepared copy (short chunks: native LSTM path) equals the whole-file pass
    enc, dec = StreamingEncoder(prepared), StreamingDecoder(prepared)
    parts = [enc.push(x[..., i:i + 6]) for i in range(0, x.shape[-1], 6)] + [enc.flush()]
    streamed = torch.cat(parts, dim=-1)
    assert torch.equal(streamed, codes)
    y_s = torch.cat([dec.push(c) for c in parts if c.shape[-1]], dim=-1)
    torch.testing.assert_close(y_s, y, atol=1e-5, rtol=1e-5)
    assert torch.backends.mkldnn.enabled  # the per-call switch is restored
