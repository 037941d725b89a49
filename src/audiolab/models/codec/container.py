"""``.alc`` container: a versioned header + codes bit-packed at ``ceil(log2(bins))`` bits each.

Layout (all integers big-endian)::

    b"ALCF"                      4 bytes magic
    version                      u16 (= 1)
    header_len                   u32, then header_len bytes of UTF-8 JSON:
        model_id, sample_rate, channels, hop_length, n_q, bins, bits, n_frames, length (samples),
        normalization, segment_samples, n_scales, payload_bytes, payload_crc32
    scales                       n_scales x float32 (per-segment RMS, EnCodec ``normalize``; usually 0 of them)
    payload                      codes [F, K] frame-major, each code ``bits`` bits MSB-first, zero-padded to a byte

The payload is exactly ``ceil(n_frames * n_q * bits / 8)`` bytes, so the file size is the nominal bitrate times the
duration plus a fixed header (DAC's ``.dac`` stores uint16 codes and metadata: ~2x its nominal bitrate, DAC #73).
A CRC32 over scales + payload catches truncated or corrupted files before decoding garbage.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"ALCF"
VERSION = 1
_PREFIX = struct.Struct(">4sHI")


class ContainerError(ValueError):
    """An ``.alc`` file that cannot be decoded; the message names the file and what is wrong."""


@dataclass
class AlcHeader:
    model_id: str
    sample_rate: int
    channels: int
    hop_length: int
    n_q: int
    bins: int
    n_frames: int
    length: int
    normalization: str = "none"
    segment_samples: int = 0
    n_scales: int = 0
    bits: int = field(default=0)
    payload_bytes: int = 0
    payload_crc32: int = 0

    def __post_init__(self) -> None:
        if not self.bits:
            self.bits = bits_per_code(self.bins)


def bits_per_code(bins: int) -> int:
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    return int(math.ceil(math.log2(bins)))


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``codes [F, K]`` (ints in ``[0, 2**bits)``) -> bytes, ``bits`` bits per code, frame-major, MSB first."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= 2**bits):
        raise ValueError(f"codes must lie in [0, {2**bits}) to pack at {bits} bits, got [{codes.min()}, {codes.max()}]")
    if not 1 <= bits <= 16:
        raise ValueError(f"bits per code must be in 1..16, got {bits}")
    as_bytes = codes.astype(">u2").reshape(-1, 1).view(np.uint8)  # [N, 2] big-endian bytes
    bit_matrix = np.unpackbits(as_bytes, axis=1)[:, 16 - bits:]  # [N, bits], MSB first
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_codes(data: bytes, n_frames: int, n_q: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: -> int64 ``[F, K]``."""
    n = n_frames * n_q
    need = (n * bits + 7) // 8
    if len(data) < need:
        raise ContainerError(f"payload has {len(data)} bytes, {need} needed for {n_frames} frames x {n_q} codes x {bits} bits")
    flat = np.unpackbits(np.frombuffer(data[:need], dtype=np.uint8))[: n * bits].reshape(n, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return (flat.astype(np.int64) @ weights).reshape(n_frames, n_q)


def write_alc(path: str | Path, header: AlcHeader, codes: np.ndarray, scales: np.ndarray | None = None) -> int:
    """Write ``codes [K, F]`` (and ``scales [S]``) to ``path`` atomically. Returns the file size in bytes."""
    from audiolab.data.cache import atomic_write_bytes

    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] != header.n_q:
        raise ValueError(f"codes must be [n_q={header.n_q}, F], got {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= header.bins):
        # pack_codes only checks the bit width: with bins=1000 a code 1000..1023 would pack and decode to garbage
        raise ValueError(f"codes must lie in [0, bins={header.bins}), got [{codes.min()}, {codes.max()}]")
    header.n_frames = int(codes.shape[1])
    scale_bytes = b"" if scales is None else np.asarray(scales, dtype=">f4").reshape(-1).tobytes()
    header.n_scales = len(scale_bytes) // 4
    payload = pack_codes(codes.T, header.bits)
    header.payload_bytes = len(payload)
    problem = header_problem(header)
    if problem:
        raise ValueError(f"cannot write {path}: {problem}")
    header.payload_crc32 = zlib.crc32(scale_bytes + payload)
    meta = json.dumps(asdict(header), sort_keys=True).encode()
    blob = _PREFIX.pack(MAGIC, VERSION, len(meta)) + meta + scale_bytes + payload
    atomic_write_bytes(path, blob)
    return len(blob)


def read_alc(path: str | Path) -> tuple[AlcHeader, np.ndarray, np.ndarray | None]:
    """-> ``(header, codes [K, F] int64, scales [S] float32 or None)``; :class:`ContainerError` on bad files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such .alc file")
    blob = path.read_bytes()
    if len(blob) < _PREFIX.size:
        raise ContainerError(f"{path}: {len(blob)} bytes is too short for an .alc file (truncated or empty)")
    magic, version, meta_len = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise ContainerError(f"{path}: not an .alc file (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ContainerError(f"{path}: container version {version} is not supported (this audiolab reads version {VERSION})")
    start = _PREFIX.size
    if len(blob) < start + meta_len:
        raise ContainerError(f"{path}: truncated header ({len(blob) - start} of {meta_len} header bytes)")
    try:
        header = AlcHeader(**json.loads(blob[start:start + meta_len].decode()))
    except (ValueError, TypeError) as err:
        raise ContainerError(f"{path}: unreadable header ({err})") from err
    problem = header_problem(header)
    if problem:
        # the CRC covers scales + payload only: an edited or corrupted header is caught here
        raise ContainerError(f"{path}: inconsistent header: {problem}")
    body = blob[start + meta_len:]
    expected = 4 * header.n_scales + header.payload_bytes
    if len(body) != expected:
        raise ContainerError(f"{path}: body has {len(body)} bytes, header promises {expected} "
                             f"({'truncated' if len(body) < expected else 'trailing data'})")
    if zlib.crc32(body) != header.payload_crc32:
        raise ContainerError(f"{path}: checksum mismatch: the file is corrupted")
    scales = np.frombuffer(body[: 4 * header.n_scales], dtype=">f4").astype(np.float32) if header.n_scales else None
    codes = unpack_codes(body[4 * header.n_scales:], header.n_frames, header.n_q, header.bits)
    return header, codes.T.copy(), scales


def header_problem(header: AlcHeader) -> str | None:
    """What makes ``header`` self-contradictory (``None`` when it is consistent): bits vs bins, frames vs length,
    scales vs segments, payload size vs codes."""
    h = header
    try:
        ints = {k: int(getattr(h, k)) for k in ("sample_rate", "channels", "hop_length", "n_q", "bins", "bits",
                                                   "n_frames", "length", "segment_samples", "n_scales",
                                                   "payload_bytes")}
    except (TypeError, ValueError) as err:
        return f"non-integer field ({err})"
    if any(v != getattr(h, k) or isinstance(getattr(h, k), bool) for k, v in ints.items()):
        return "non-integer field"
    if min(h.sample_rate, h.channels, h.hop_length, h.n_q) < 1 or h.bins < 2:
        return (f"sample_rate {h.sample_rate}, channels {h.channels}, hop_length {h.hop_length}, n_q {h.n_q} must be "
                f">= 1 and bins {h.bins} >= 2")
    if h.bits != bits_per_code(h.bins):
        return f"bits {h.bits} does not match bins {h.bins} (ceil(log2(bins)) = {bits_per_code(h.bins)})"
    if h.bits > 16:
        return f"bins {h.bins} needs {h.bits} bits per code; at most 16 (65536 bins) are supported"
    if min(h.n_frames, h.length, h.segment_samples, h.n_scales) < 0:
        return "negative n_frames, length, segment_samples or n_scales"
    if h.segment_samples % h.hop_length:
        return f"segment_samples {h.segment_samples} is not a multiple of hop_length {h.hop_length}"
    multiple = h.segment_samples or h.hop_length
    padded = -(-h.length // multiple) * multiple
    if h.n_frames != padded // h.hop_length:
        return (f"length {h.length} samples at hop_length {h.hop_length} (padded to {padded}) needs "
                f"{padded // h.hop_length} frames, header says n_frames {h.n_frames}")
    want_scales = padded // h.segment_samples if h.segment_samples else 0
    if h.n_scales != want_scales:
        return f"n_scales {h.n_scales}, but length {h.length} with segment_samples {h.segment_samples} needs {want_scales}"
    need = (h.n_frames * h.n_q * h.bits + 7) // 8
    if h.payload_bytes != need:
        return f"payload_bytes {h.payload_bytes}, but {h.n_frames} frames x {h.n_q} codes x {h.bits} bits need {need}"
    return None


def header_bytes(path: str | Path) -> int:
    """Bytes of an ``.alc`` file that are not code payload (prefix + JSON header + scales)."""
    blob = Path(path).read_bytes()
    _, _, meta_len = _PREFIX.unpack_from(blob)
    header = AlcHeader(**json.loads(blob[_PREFIX.size:_PREFIX.size + meta_len].decode()))
    return _PREFIX.size + meta_len + 4 * header.n_scales
