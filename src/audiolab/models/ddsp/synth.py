"""The DDSP network: conditioning -> decoder -> control heads -> harmonic + filtered-noise synth (+ reverb).

Knows nothing about Lightning: notebooks and the inference CLI build it straight from a stored config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

from audiolab.audio.pitch import hz_to_midi
from audiolab.dsp import FilteredNoise, HarmonicSynth, Reverb, exp_sigmoid, normalize_harmonics
from audiolab.models.ddsp.decoder import build_decoder

LOUDNESS_RANGE_DB = 80.0  # DDSP v2: ld_scaled = dB / 80 + 1
HEADS = ("exp_sigmoid", "softmax")
SMOOTHING = ("none", "onepole")
SMOOTHING_TARGETS = ("amplitude", "harmonic_distribution", "noise_magnitudes")


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
    smoothing_targets: list[str] = field(default_factory=lambda: list(SMOOTHING_TARGETS))

    def validate(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"model.net.head must be one of {HEADS}, got {self.head!r}")
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


class DDSP(nn.Module):
    """f0 + loudness -> audio.

    forward(f0_hz [B, F] Hz, loudness_db [B, F] dB) -> dict with
      audio [B, T], harmonic [B, T], noise [B, T] (zeros when off), amplitude [B, F],
      harmonic_distribution [B, F, K] (normalized below Nyquist), noise_magnitudes [B, F, n_bands], T = F * hop.
    """

    def __init__(self, config: DDSPConfig, decoder: dict):
        super().__init__()
        config.validate()
        self.config = config
        self.in_features = 2 + int(config.delta_f0) + int(config.delta_loudness)
        self.out_features = 1 + config.n_harmonics + (config.n_noise_bands if config.noise else 0)
        try:
            self.decoder = build_decoder(in_features=self.in_features, out_features=self.out_features, **decoder)
        except (ValueError, TypeError) as err:
            raise ValueError(f"model.decoder: {err}") from err
        self.harmonic = HarmonicSynth(sample_rate=config.sample_rate)
        self.filtered_noise = FilteredNoise(n_bands=config.n_noise_bands, initial_bias=config.noise_initial_bias) if config.noise else None
        self.reverb = Reverb(length=config.reverb_length, trainable=True, add_dry=True) if config.reverb else None

    def conditioning(self, f0_hz: Tensor, loudness_db: Tensor) -> Tensor:
        """[B, F] x 2 -> decoder input [B, F, in_features]: f0_scaled, ld_scaled (+ first differences)."""
        f0_scaled = scale_f0(f0_hz)
        ld_scaled = scale_loudness(loudness_db)
        feats = [f0_scaled, ld_scaled]
        if self.config.delta_f0:
            # x 10: a semitone step is 1/127 in f0_scaled; bring differences to a usable range
            feats.append(torch.diff(f0_scaled, dim=-1, prepend=f0_scaled[..., :1]) * 10.0)
        if self.config.delta_loudness:
            feats.append(torch.diff(ld_scaled, dim=-1, prepend=ld_scaled[..., :1]) * 10.0)
        return torch.stack(feats, dim=-1)

    def controls(self, f0_hz: Tensor, loudness_db: Tensor) -> dict[str, Tensor]:
        """Decoder + heads: the synth controls (before synthesis), all >= 0."""
        raw = self.decoder(self.conditioning(f0_hz, loudness_db)).float()
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
        if self.config.smoothing == "onepole":
            for name in self.config.smoothing_targets:
                if name in out:
                    out[name] = onepole(out[name], self.config.smoothing_alpha)
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

    def forward(self, f0_hz: Tensor, loudness_db: Tensor, n_samples: int | None = None) -> dict[str, Tensor]:
        controls = self.controls(f0_hz, loudness_db)
        out = self.synthesize(f0_hz, controls, n_samples)
        # report the distribution the synth actually used (zeroed above Nyquist, normalized)
        controls["harmonic_distribution"] = normalize_harmonics(controls["harmonic_distribution"], f0_hz.float(), self.config.sample_rate)
        return {**out, **controls}


def build_ddsp(sample_rate: int, frame_rate: int, net: dict, decoder: dict) -> DDSP:
    """Build from the `model.net` / `model.decoder` config sections (plain dicts)."""
    cfg = DDSPConfig(sample_rate=sample_rate, frame_rate=frame_rate, **dict(net))
    return DDSP(cfg, dict(decoder))
