"""Kaldi filterbank features written with tensor ops, batched over padded waveforms: what an exported graph
computes in front of the model.

``torchaudio.compliance.kaldi.fbank`` reads one waveform and sizes its frames with Python integers, so an
export freezes it to the example's length. This is the same computation (snip_edges framing, DC removal,
pre-emphasis 0.97, povey window, zero padding to 512, power spectrum, torchaudio's mel banks, log floored at
float32 eps) on a (B, S) batch, with every length a tensor dimension; frames past an utterance's own count are
zero, as the collate of the eager path pads them. tests/export/test_export_fbank.py checks it against kaldi.fbank.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.compliance import kaldi

from snlu.core.frames import SAMPLE_RATE

KALDI_SCALE = 32768.0  # Kaldi reads 16-bit integer samples; the frontend scales [-1, 1] floats to them
PREEMPHASIS = 0.97


class TensorFbank(nn.Module):
    """(B, S) 16 kHz waveforms in [-1, 1] and their lengths -> (B, T, num_mel_bins) log-mel fbank, (B,) frames."""

    def __init__(self, num_mel_bins: int, frame_length_ms: float, frame_shift_ms: float):
        super().__init__()
        self.window = int(SAMPLE_RATE * frame_length_ms / 1000)  # samples, as kaldi rounds them
        self.shift = int(SAMPLE_RATE * frame_shift_ms / 1000)
        self.fft = 1 if self.window == 0 else 2 ** (self.window - 1).bit_length()  # round_to_power_of_two
        window = torch.hann_window(self.window, periodic=False).pow(0.85)  # povey
        banks, _ = kaldi.get_mel_banks(num_mel_bins, self.fft, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = F.pad(banks.float(), (0, 1))  # (mels, fft/2 + 1): kaldi pads the Nyquist bin with zero
        self.register_buffer("povey", window, persistent=False)
        self.register_buffer("banks", banks, persistent=False)  # (mels, fft/2 + 1)
        self.register_buffer("eps", torch.tensor(torch.finfo(torch.float32).eps), persistent=False)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """(B,) samples -> (B,) frames (0 when shorter than one window)."""
        frames = torch.div(lengths - self.window, self.shift, rounding_mode="floor") + 1
        return frames.clamp_min(0)

    def forward(self, waveform: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = waveform.float() * KALDI_SCALE  # (B, S)
        frames = x.unfold(1, self.window, self.shift)  # (B, T, window)
        frames = frames - frames.mean(-1, keepdim=True)  # remove_dc_offset
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # x[j - 1], x[0] replicated
        frames = (frames - PREEMPHASIS * previous) * self.povey
        frames = F.pad(frames, (0, self.fft - self.window))  # (B, T, fft)
        power = torch.fft.rfft(frames).abs().pow(2.0)  # (B, T, fft/2 + 1)
        b, t, k = power.shape
        mel = torch.mm(power.reshape(b * t, k), self.banks.T).reshape(b, t, -1)  # (B, T, mels): kaldi's mm
        mel = torch.maximum(mel, self.eps).log()
        counts = self.num_frames(lengths)  # (B,)
        real = torch.arange(t, device=x.device)[None, :] < counts[:, None]  # (B, T)
        return mel * real[..., None], counts


def check_fbank_settings(settings: dict) -> None:
    """Refuse frontends whose features this module does not compute (dither, other scales or rates)."""
    expected = {"frontend": "fbank", "sample_rate": SAMPLE_RATE, "dither": 0.0, "energy_floor": 0.0,
                "scale": KALDI_SCALE}
    for key, value in expected.items():
        got = settings.get(key)
        if got != value and not (isinstance(got, float) and math.isclose(got, value)):
            raise ValueError(f"{key} is {got!r}; the exported fbank computes {key} {value!r}")
