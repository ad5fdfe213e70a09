"""Mandarin text-to-speech through espeak-ng, for the built-in demo corpus.

The `espeakng-loader` wheel ships ``libespeak-ng.so`` and its data folder; we drive the library
directly with ctypes (finding the wheel's folder without importing it), so no system install is
needed. espeak-ng keeps global state, hence one engine per process shared by every Synthesizer.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from snlu.data.audio import SAMPLE_RATE, resample
from snlu.errors import SnluError

_INSTALL_HINT = "pip install espeakng-loader"

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_EE_OK = 0

_LIB_NAME = {"win32": "espeak-ng.dll", "darwin": "libespeak-ng.dylib"}.get(sys.platform, "libespeak-ng.so")

_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def espeak_dir() -> Path:
    """Folder of the installed `espeakng-loader` wheel (holds the library and its data)."""
    spec = importlib.util.find_spec("espeakng_loader")
    if spec is None or not spec.submodule_search_locations:
        raise SnluError(f"speech synthesis needs the 'espeakng-loader' package: {_INSTALL_HINT}")
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / _LIB_NAME).is_file() or not (d / "espeak-ng-data").is_dir():
        raise SnluError(f"'espeakng-loader' at {d} lacks {_LIB_NAME} or espeak-ng-data: {_INSTALL_HINT}")
    return d


class _Engine:
    """The process-wide espeak-ng instance; every call goes through ``lock``."""

    def __init__(self) -> None:
        d = espeak_dir()
        try:
            self.lib = ctypes.CDLL(str(d / _LIB_NAME))
        except OSError as e:
            raise SnluError(f"cannot load {d / _LIB_NAME}: {e}") from e
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.chunks: list[np.ndarray] = []
        self.voice = b""
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(d / "espeak-ng-data").encode(), 0)
        if self.sample_rate <= 0:
            raise SnluError(f"espeak-ng failed to initialise from {d / 'espeak-ng-data'}")
        # Must stay referenced for the process lifetime: espeak keeps only the raw C pointer.
        self.callback = _SYNTH_CB(self._collect)
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: ctypes._Pointer, n: int, events: int) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())  # buffer is reused
        return 0  # 0 = keep synthesising

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        """int16 samples at the engine's native rate."""
        with self.lock:
            if voice.encode() != self.voice:
                if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise SnluError(f"espeak-ng has no voice {voice!r}")
                self.voice = voice.encode()
            self.lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
            self.chunks = []
            data = text.encode("utf-8")
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            if err != _EE_OK:
                raise SnluError(f"espeak-ng failed (error {err}) on text {text!r}")
            chunks, self.chunks = self.chunks, []
        wav = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return wav, self.sample_rate


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        elif _ENGINE.pid != os.getpid():
            # A forked child (e.g. a DataLoader worker) inherits the synchronous C state, which is
            # usable, but the lock may have been held by a thread that does not exist there.
            _ENGINE.lock, _ENGINE.pid = threading.Lock(), os.getpid()
        return _ENGINE


class Synthesizer:
    """Mandarin TTS (espeak-ng ``cmn`` voice) returning float32 mono audio at 16 kHz."""

    def __init__(self, voice: str = "cmn") -> None:
        self.voice = voice
        self._engine = _engine()

    def synthesize(self, text: str, rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` at ``rate`` words/minute (80-450) and ``pitch`` (0-100); nothing trimmed."""
        if not 80 <= rate <= 450:
            raise SnluError(f"speech rate must be within 80-450, got {rate}")
        if not 0 <= pitch <= 100:
            raise SnluError(f"pitch must be within 0-100, got {pitch}")
        wav, sr = self._engine.synth(text, self.voice, int(rate), int(pitch))
        audio = wav.astype(np.float32) / 32768.0
        return resample(audio, sr, SAMPLE_RATE)
