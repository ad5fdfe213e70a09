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


def wav_header_frames(path: str | Path) -> int | None:
    """The frames a RIFF WAV's ``data`` chunk header declares (None: not a WAV, no such chunk, or a streaming
    writer's placeholder size). soundfile counts the frames the file holds, which a truncated file has fewer of."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while len(chunk := f.read(8)) == 8:
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind == b"data":
                unknown = size in (0, 0xFFFFFFFF)  # written before the length was known
                return None if unknown or not block_align else size // block_align
            if kind == b"fmt ":
                fmt = f.read(min(size, 16))
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0  # bytes per frame
                size -= len(fmt)
            f.seek(size + size % 2, os.SEEK_CUR)  # (chunks are padded to an even size; a damaged size: EOF)
    return None


def truncation(path: str | Path, frames: int, sample_rate: int) -> str | None:
    """Why a file holds fewer frames than its header declares (None when it holds them all)."""
    declared = wav_header_frames(path)
    if declared is None or declared <= frames:
        return None
    return (f"truncated: the header says {declared / sample_rate:.2f} s ({declared} samples), the file holds "
            f"{frames / sample_rate:.2f} s ({frames})")


def as_samples(audio: np.ndarray, where: str) -> np.ndarray:
    """Samples as float32 in [-1, 1]: integer PCM scaled by its type's range (int16 by 32768; unsigned types
    centred first, as 8-bit WAV is), floats as they are; non-finite samples are a DataError."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.signedinteger):
        audio = audio.astype(np.float64) / -np.iinfo(audio.dtype).min
    elif np.issubdtype(audio.dtype, np.unsignedinteger):
        half = (np.iinfo(audio.dtype).max + 1) / 2
        audio = (audio.astype(np.float64) - half) / half
    elif not np.issubdtype(audio.dtype, np.floating):
        raise DataError(where, f"expected float samples in [-1, 1] or integer PCM, got dtype {audio.dtype}",
                        field="audio")
    audio = np.asarray(audio, dtype=np.float32)
    bad = int(audio.size - np.count_nonzero(np.isfinite(audio)))
    if bad:
        raise DataError(where, f"{bad} of {audio.size} samples are not finite (NaN or inf)", field="audio")
    return audio


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
    if not np.isfinite(audio).all():  # a float WAV can hold NaN: it would make every score NaN
        raise DataError(path, "audio holds non-finite samples (NaN or inf)")
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
