"""Reading and writing 16 kHz mono wav files.

We use `soundfile` (libsndfile, bundled in its wheel) rather than ``torchaudio.load``, which
needs an ffmpeg install in recent torchaudio releases.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from snlu.core.errors import DataError, SnluError
from snlu.core.frames import SAMPLE_RATE


@functools.lru_cache(maxsize=8)
def _resampler(sr: int, target: int) -> Any:
    # Same sinc filter as torchaudio.functional.resample, but the kernel is built once per rate pair
    # (building it dominates the cost: ~3x slower per call for 22.05 -> 16 kHz).
    import torchaudio  # here: reading 16 kHz audio needs no torch (the exported models' runtime)

    return torchaudio.transforms.Resample(sr, target)


def resample(audio: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a float32 mono signal from ``sr`` to ``target`` Hz (no-op when they match)."""
    audio = np.asarray(audio, dtype=np.float32)
    if sr == target:
        return audio
    try:
        import torch
    except ImportError:
        raise SnluError(f"resampling {sr} Hz audio to {target} Hz needs torchaudio, which is not installed here: "
                        f"give {target} Hz audio") from None
    with torch.no_grad():
        out = _resampler(int(sr), int(target))(torch.from_numpy(audio))
    return out.numpy().astype(np.float32, copy=False)


def read_wav(path: str | Path) -> np.ndarray:
    """Read an audio file as float32 mono at 16 kHz (stereo is averaged, other rates resampled)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:  # soundfile's errors subclass RuntimeError
        raise DataError(path, f"cannot read audio: {e}") from e
    if audio.shape[0] == 0:
        raise DataError(path, "audio file has no samples")
    g = math.gcd(int(sr), SAMPLE_RATE)
    if sr <= 0 or sr // g > 2000 or SAMPLE_RATE // g > 2000:  # the resampling kernel would be huge (GBs)
        raise DataError(path, f"unsupported sample rate {sr} Hz (resample it to {SAMPLE_RATE} Hz first)")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    return resample(np.ascontiguousarray(mono), int(sr))


def write_wav(path: str | Path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1] as 16-bit PCM wav, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target so os.replace is an atomic rename, never a cross-device copy.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        sf.write(tmp, clipped, sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
