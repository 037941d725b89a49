"""Audio I/O, spectral features (STFT, mel, A-weighted loudness) and pitch estimation."""

from audiolab.audio.features import (
    a_weighted_loudness,
    a_weighting_db,
    log_mel_spectrogram,
    mel_spectrogram,
    stft_magnitude,
)
from audiolab.audio.io import AUDIO_EXTENSIONS, AudioLoadError, audio_files, load_audio, save_audio
from audiolab.audio.pitch import cents_between, estimate_f0, hz_to_midi, midi_to_hz

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioLoadError",
    "a_weighted_loudness",
    "a_weighting_db",
    "audio_files",
    "cents_between",
    "estimate_f0",
    "hz_to_midi",
    "load_audio",
    "log_mel_spectrogram",
    "mel_spectrogram",
    "midi_to_hz",
    "save_audio",
    "stft_magnitude",
]
