"""Differentiable DSP: harmonic synth, filtered noise, reverb and their building blocks (magenta/ddsp semantics)."""

from audiolab.dsp.core import (
    angular_cumsum,
    autocast_disabled,
    exp_sigmoid,
    fft_convolve,
    normalize_harmonics,
    remove_above_nyquist,
    safe_divide,
    upsample_linear,
    upsample_with_windows,
)
from audiolab.dsp.harmonic import HarmonicSynth
from audiolab.dsp.noise import FilteredNoise, frequency_impulse_response
from audiolab.dsp.reverb import Reverb

__all__ = [
    "FilteredNoise",
    "HarmonicSynth",
    "Reverb",
    "angular_cumsum",
    "autocast_disabled",
    "exp_sigmoid",
    "fft_convolve",
    "frequency_impulse_response",
    "normalize_harmonics",
    "remove_above_nyquist",
    "safe_divide",
    "upsample_linear",
    "upsample_with_windows",
]
