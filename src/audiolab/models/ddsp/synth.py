"""The DDSP network: conditioning -> decoder -> control heads -> harmonic + filtered-noise synth (+ reverb).

Knows nothing about Lightning: notebooks and the inference CLI build it straight from a stored config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

from audiolab.audio.pitch import hz_to_midi
from audiolab.dsp import FilteredNoise, HarmonicSynth, Reverb, exp_sigmoid, normalize_harmonics
from audiolab.models.ddsp.decoder import build_decoder

LOUDNESS_RANGE_DB = 80.0  # DDSP v2: ld_scaled = dB / 80 + 1
LOUDNESS_FLOOR_DB = -LOUDNESS_RANGE_DB  # the A-weighted loudness of digital silence in the training features
HEADS = ("exp_sigmoid", "softmax")
SMOOTHING = ("none", "onepole", "biquad")
SMOOTHING_TARGETS = ("amplitude", "harmonic_distribution", "noise_magnitudes")
VOICED_INPUTS = ("none", "soft", "binary")


@dataclass
class DDSPConfig:
    sample_rate: int = 16000
    frame_rate: int = 250
    n_harmonics: int = 60
    n_noise_bands: int = 65
    noise: bool = True
    noise_initial_bias: float = -5.0
    reverb: bool = False
    reverb_length: int = 48000
    head: str = "exp_sigmoid"
    delta_f0: bool = False
    delta_loudness: bool = False
    smoothing: str = "none"
    smoothing_alpha: float = 0.9
    smoothing_cutoff_hz: float = 20.0
    smoothing_targets: list[str] = field(default_factory=lambda: list(SMOOTHING_TARGETS))
    voiced_input: str = "none"
    voiced_threshold: float = 0.5
    ar_residual: bool = False
    ar_init: float = 0.5
    silence_gate_db: float | None = None

    def validate(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"model.net.head must be one of {HEADS}, got {self.head!r}")
        if self.voiced_input not in VOICED_INPUTS:
            raise ValueError(f"model.net.voiced_input must be one of {VOICED_INPUTS}, got {self.voiced_input!r}")
        if not 0.0 <= self.voiced_threshold <= 1.0:
            raise ValueError(f"model.net.voiced_threshold must be in [0, 1], got {self.voiced_threshold}")
        if not 0.0 < self.ar_init < 1.0:
            raise ValueError(f"model.net.ar_init must be in (0, 1), got {self.ar_init}")
        if self.silence_gate_db is not None and not LOUDNESS_FLOOR_DB < self.silence_gate_db <= 0.0:
            raise ValueError(f"model.net.silence_gate_db must be in ({LOUDNESS_FLOOR_DB:g}, 0] dB or null, "
                             f"got {self.silence_gate_db}")
        if self.smoothing == "biquad" and not 0.0 < self.smoothing_cutoff_hz < self.frame_rate / 2:
            raise ValueError(f"model.net.smoothing_cutoff_hz must be in (0, frame_rate/2 = {self.frame_rate / 2:g}) Hz, "
                             f"got {self.smoothing_cutoff_hz}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"model.net.smoothing must be one of {SMOOTHING}, got {self.smoothing!r}")
        bad = [t for t in self.smoothing_targets if t not in SMOOTHING_TARGETS]
        if bad:
            raise ValueError(f"model.net.smoothing_targets has unknown entries {bad}; allowed {SMOOTHING_TARGETS}")
        if not 0.0 <= self.smoothing_alpha < 1.0:
            raise ValueError(f"model.net.smoothing_alpha must be in [0, 1), got {self.smoothing_alpha}")
        if self.sample_rate % self.frame_rate:
            raise ValueError(f"frame_rate {self.frame_rate} must divide sample_rate {self.sample_rate}")
        if self.n_harmonics < 1:
            raise ValueError(f"model.net.n_harmonics must be >= 1, got {self.n_harmonics}")
        if self.noise and self.n_noise_bands < 2:
            raise ValueError(f"model.net.n_noise_bands must be >= 2 when noise is on, got {self.n_noise_bands}")

    @property
    def hop_length(self) -> int:
        return self.sample_rate // self.frame_rate


def scale_f0(f0_hz: Tensor) -> Tensor:
    """``f0_scaled = midi / 127`` (DDSP), 0 for unvoiced / non-positive f0."""
    return hz_to_midi(f0_hz) / 127.0


def scale_loudness(loudness_db: Tensor) -> Tensor:
    """``ld_scaled = dB / 80 + 1`` (DDSP v2)."""
    return loudness_db / LOUDNESS_RANGE_DB + 1.0


def onepole(x: Tensor, alpha: float) -> Tensor:
    """``y[t] = alpha*y[t-1] + (1-alpha)*x[t]`` along frames. x: [B, F, C] -> [B, F, C] (causal, differentiable)."""
    if alpha <= 0.0:
        return x
    b, f, c = x.shape
    flat = x.transpose(1, 2).reshape(b * c, f).float()
    a = torch.tensor([1.0, -alpha], dtype=flat.dtype, device=flat.device)
    bcoef = torch.tensor([1.0 - alpha, 0.0], dtype=flat.dtype, device=flat.device)
    # lfilter runs the recursion in C++ (no Python loop over frames); clamp=False keeps the scale of the controls.
    y = AF.lfilter(flat, a, bcoef, clamp=False)
    return y.reshape(b, c, f).transpose(1, 2).to(x.dtype)


def biquad_lowpass_coefficients(cutoff_hz: float, rate_hz: float, q: float = 2**-0.5) -> tuple[list[float], list[float]]:
    """RBJ-cookbook second-order low-pass (``Q = 1/sqrt(2)``: Butterworth), normalized so ``a[0] = 1``.

    Returns ``(b, a)`` as lists ``[b0, b1, b2]``, ``[1, a1, a2]`` for ``y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2]
    - a1 y[n-1] - a2 y[n-2]``; DC gain 1, -3 dB at ``cutoff_hz`` (``rate_hz``: the control frame rate).
    """
    w0 = 2.0 * math.pi * cutoff_hz / rate_hz
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    a0 = 1.0 + alpha
    b = [(1.0 - cos_w0) / 2.0 / a0, (1.0 - cos_w0) / a0, (1.0 - cos_w0) / 2.0 / a0]
    a = [1.0, -2.0 * cos_w0 / a0, (1.0 - alpha) / a0]
    return b, a


def biquad(x: Tensor, cutoff_hz: float, rate_hz: float) -> Tensor:
    """Second-order Butterworth low-pass along frames (causal, differentiable). x: [B, F, C] -> [B, F, C].

    Steeper than :func:`onepole` (-12 dB/octave above the cutoff instead of -6), so it removes frame-rate jitter
    of the controls with less smearing of note onsets at the same cutoff.
    """
    b_coef, a_coef = biquad_lowpass_coefficients(cutoff_hz, rate_hz)
    bsz, f, c = x.shape
    flat = x.transpose(1, 2).reshape(bsz * c, f).float()
    a = torch.tensor(a_coef, dtype=flat.dtype, device=flat.device)
    b = torch.tensor(b_coef, dtype=flat.dtype, device=flat.device)
    # torchaudio.functional.lowpass_biquad would clamp the output to [-1, 1] (lfilter's default): controls go to 2
    y = AF.lfilter(flat, a, b, clamp=False)
    return y.reshape(bsz, c, f).transpose(1, 2).to(x.dtype)


def ar_residual(innovation: Tensor, coefficient: Tensor) -> Tensor:
    """Autoregressive residual controls: ``y[t] = a * y[t-1] + (1 - a) * d[t]`` per channel, ``y[-1] = 0``.

    innovation ``d`` [B, F, C] (the decoder's output), coefficient ``a`` [C] in (0, 1) (learned) -> [B, F, C].
    The decoder predicts what changes from one frame to the next; the recursion (unit DC gain) carries the rest.
    Differentiable in both ``d`` and ``a`` (torchaudio's lfilter has a backward for its coefficients).
    """
    bsz, f, c = innovation.shape
    x = innovation.float().permute(0, 2, 1)  # [B, C, F]
    a = coefficient.float()
    a_coeffs = torch.stack([torch.ones_like(a), -a], dim=-1)  # [C, 2]
    b_coeffs = torch.stack([1.0 - a, torch.zeros_like(a)], dim=-1)
    y = AF.lfilter(x, a_coeffs, b_coeffs, clamp=False, batching=True)
    return y.permute(0, 2, 1).to(innovation.dtype)


def silence_gate(loudness_db: Tensor, gate_db: float) -> Tensor:
    """``[B, F]`` input loudness -> gain ``[B, F]``: 0 at the loudness floor (-80 dB), rising linearly to 1 at
    ``gate_db``. Input at the floor (digital silence) gives output at the floor, whatever the decoder predicts."""
    return ((loudness_db - LOUDNESS_FLOOR_DB) / (gate_db - LOUDNESS_FLOOR_DB)).clamp(0.0, 1.0)


class DDSP(nn.Module):
    """f0 + loudness (+ CREPE confidence) -> audio.

    forward(f0_hz [B, F] Hz, loudness_db [B, F] dB, n_samples, confidence [B, F] in [0, 1] or None) -> dict with
      audio [B, T], harmonic [B, T], noise [B, T] (zeros when off), amplitude [B, F],
      harmonic_distribution [B, F, K] (normalized below Nyquist), noise_magnitudes [B, F, n_bands], T = F * hop.

    The steps are separate so a whole file can be decoded in chunks (:mod:`audiolab.models.ddsp.render`):
    :meth:`conditioning` (inputs -> decoder features), ``decoder`` (-> raw controls), :meth:`heads` (raw ->
    controls: activations, autoregressive residual, smoothing, silence gate), :meth:`synthesize`.
    """

    def __init__(self, config: DDSPConfig, decoder: dict):
        super().__init__()
        config.validate()
        self.config = config
        self.in_features = (2 + int(config.delta_f0) + int(config.delta_loudness)
                            + int(config.voiced_input != "none"))
        self.out_features = 1 + config.n_harmonics + (config.n_noise_bands if config.noise else 0)
        try:
            self.decoder = build_decoder(in_features=self.in_features, out_features=self.out_features, **decoder)
        except (ValueError, TypeError) as err:
            raise ValueError(f"model.decoder: {err}") from err
        self.harmonic = HarmonicSynth(sample_rate=config.sample_rate)
        self.filtered_noise = FilteredNoise(n_bands=config.n_noise_bands, initial_bias=config.noise_initial_bias) if config.noise else None
        self.reverb = Reverb(length=config.reverb_length, trainable=True, add_dry=True) if config.reverb else None
        if config.ar_residual:
            # a = sigmoid(logit): one learned coefficient per raw control channel
            init = math.log(config.ar_init / (1.0 - config.ar_init))
            self.ar_logit = nn.Parameter(torch.full((self.out_features,), init))

    def conditioning(self, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor | None = None) -> Tensor:
        """[B, F] each -> decoder input [B, F, in_features]: f0_scaled, ld_scaled (+ first differences)
        (+ voicing from CREPE confidence: the confidence itself (``soft``) or ``confidence >= threshold``)."""
        f0_scaled = scale_f0(f0_hz)
        ld_scaled = scale_loudness(loudness_db)
        feats = [f0_scaled, ld_scaled]
        if self.config.delta_f0:
            # x 10: a semitone step is 1/127 in f0_scaled; bring differences to a usable range
            feats.append(torch.diff(f0_scaled, dim=-1, prepend=f0_scaled[..., :1]) * 10.0)
        if self.config.delta_loudness:
            feats.append(torch.diff(ld_scaled, dim=-1, prepend=ld_scaled[..., :1]) * 10.0)
        if self.config.voiced_input != "none":
            if confidence is None:
                raise ValueError("model.net.voiced_input is set: the model needs the CREPE confidence [B, F] as input")
            conf = confidence.to(f0_scaled.dtype)
            feats.append((conf >= self.config.voiced_threshold).to(conf.dtype) if self.config.voiced_input == "binary" else conf)
        return torch.stack(feats, dim=-1)

    def controls(self, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor | None = None) -> dict[str, Tensor]:
        """Decoder + heads: the synth controls (before synthesis), all >= 0."""
        raw = self.decoder(self.conditioning(f0_hz, loudness_db, confidence))
        return self.heads(raw, loudness_db)

    def heads(self, raw: Tensor, loudness_db: Tensor) -> dict[str, Tensor]:
        """Raw decoder output [B, F, out_features] -> controls: amplitude [B, F], harmonic_distribution [B, F, K],
        noise_magnitudes [B, F, bands] (all >= 0). Every step here runs along frames causally over the given
        frames, so a whole file is processed here in one call (cheap) after chunked decoding."""
        raw = raw.float()
        if self.config.ar_residual:
            raw = ar_residual(raw, torch.sigmoid(self.ar_logit))
        k = self.config.n_harmonics
        amp_raw, hd_raw = raw[..., :1], raw[..., 1 : 1 + k]
        amplitude = exp_sigmoid(amp_raw)
        if self.config.head == "softmax":
            harmonic_distribution = torch.softmax(hd_raw, dim=-1)
        else:
            harmonic_distribution = exp_sigmoid(hd_raw)
        out = {"amplitude": amplitude, "harmonic_distribution": harmonic_distribution}
        if self.filtered_noise is not None:
            out["noise_magnitudes"] = exp_sigmoid(raw[..., 1 + k :] + self.config.noise_initial_bias)
        if self.config.smoothing != "none":
            for name in self.config.smoothing_targets:
                if name in out:
                    out[name] = (onepole(out[name], self.config.smoothing_alpha) if self.config.smoothing == "onepole"
                                 else biquad(out[name], self.config.smoothing_cutoff_hz, self.config.frame_rate))
        if self.config.silence_gate_db is not None:
            gate = silence_gate(loudness_db.float(), self.config.silence_gate_db).unsqueeze(-1)  # [B, F, 1]
            out["amplitude"] = out["amplitude"] * gate
            if "noise_magnitudes" in out:
                out["noise_magnitudes"] = out["noise_magnitudes"] * gate
        out["amplitude"] = out["amplitude"].squeeze(-1)
        return out

    def synthesize(self, f0_hz: Tensor, controls: dict[str, Tensor], n_samples: int | None = None, noise: Tensor | None = None) -> dict[str, Tensor]:
        n_samples = n_samples or f0_hz.shape[-1] * self.config.hop_length
        harmonic = self.harmonic(f0_hz.float(), controls["amplitude"], controls["harmonic_distribution"], n_samples)
        if self.filtered_noise is not None:
            noise_audio = self.filtered_noise(controls["noise_magnitudes"], n_samples, noise=noise)
        else:
            noise_audio = torch.zeros_like(harmonic)
        dry = harmonic + noise_audio
        audio = self.reverb(dry) if self.reverb is not None else dry
        return {"audio": audio, "harmonic": harmonic, "noise": noise_audio}

    def forward(self, f0_hz: Tensor, loudness_db: Tensor, n_samples: int | None = None,
                confidence: Tensor | None = None) -> dict[str, Tensor]:
        controls = self.controls(f0_hz, loudness_db, confidence)
        out = self.synthesize(f0_hz, controls, n_samples)
        # report the distribution the synth actually used (zeroed above Nyquist, normalized)
        controls["harmonic_distribution"] = normalize_harmonics(controls["harmonic_distribution"], f0_hz.float(), self.config.sample_rate)
        return {**out, **controls}


def build_ddsp(sample_rate: int, frame_rate: int, net: dict, decoder: dict) -> DDSP:
    """Build from the `model.net` / `model.decoder` config sections (plain dicts)."""
    cfg = DDSPConfig(sample_rate=sample_rate, frame_rate=frame_rate, **dict(net))
    return DDSP(cfg, dict(decoder))
