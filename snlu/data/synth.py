"""Mandarin text-to-speech through espeak-ng, for the built-in demo corpus.

The `espeakng-loader` wheel ships ``libespeak-ng.so`` and its data folder; we drive the library
directly with ctypes (finding the wheel's folder without importing it), so no system install is
needed.

espeak-ng keeps hidden state between utterances (a function-static pitch "flutter" index that
nothing resets), so the same text would sound slightly different depending on what was said
before. To make every utterance a pure function of (text, voice, rate, pitch) we load a fresh copy
of the library for each one and unload it afterwards; that costs about 4 ms. It assumes nothing
else in the process holds libespeak-ng open (if something does, output is merely not bit-exact).
"""

from __future__ import annotations

import _ctypes
import ctypes
import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np

from snlu.core.errors import SnluError
from snlu.data.audio import SAMPLE_RATE, resample

_INSTALL_HINT = "pip install espeakng-loader"
_LIB_NAME = {"win32": "espeak-ng.dll", "darwin": "libespeak-ng.dylib"}.get(sys.platform, "libespeak-ng.so")

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a bad data path makes espeak call exit()
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_EE_OK = 0

_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# espeak-ng is one global C state per process: one utterance at a time.
_LOCK = threading.Lock()
_chunks: list[np.ndarray] = []


def _collect(wav: ctypes._Pointer, n: int, events: int) -> int:
    if n > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())  # espeak reuses the buffer
    return 0  # 0 = keep synthesising


# Module-level so it outlives every library instance: espeak keeps only the raw C pointer.
_CALLBACK = _SYNTH_CB(_collect)


def espeak_dir() -> Path:
    """Folder of the installed `espeakng-loader` wheel (holds the library and its data)."""
    spec = importlib.util.find_spec("espeakng_loader")
    if spec is None or not spec.submodule_search_locations:
        raise SnluError(f"speech synthesis needs the 'espeakng-loader' package: {_INSTALL_HINT}")
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / _LIB_NAME).is_file() or not (d / "espeak-ng-data").is_dir():
        raise SnluError(f"'espeakng-loader' at {d} lacks {_LIB_NAME} or espeak-ng-data: {_INSTALL_HINT}")
    return d


def _unload(lib: ctypes.CDLL) -> None:
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(lib._handle)


def _espeak(d: Path, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """int16 samples at espeak's native rate, from a freshly loaded library (see module doc)."""
    try:
        lib = ctypes.CDLL(str(d / _LIB_NAME))
    except OSError as e:
        raise SnluError(f"cannot load {d / _LIB_NAME}: {e}") from e
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    try:
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(d / "espeak-ng-data").encode(),
                                   _INITIALIZE_DONT_EXIT)
        if sr <= 0:
            raise SnluError(f"espeak-ng failed to initialise from {d / 'espeak-ng-data'}")
        lib.espeak_SetSynthCallback(_CALLBACK)
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SnluError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        _chunks.clear()
        data = text.encode("utf-8")
        err = lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != _EE_OK:
            raise SnluError(f"espeak-ng failed (error {err}) on text {text!r}")
        wav = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
        _chunks.clear()
        return wav, sr
    finally:
        lib.espeak_Terminate()
        _unload(lib)


class Synthesizer:
    """Mandarin TTS (espeak-ng ``cmn`` voice) returning float32 mono audio at 16 kHz; thread-safe."""

    def __init__(self, voice: str = "cmn") -> None:
        self.voice = voice
        self._dir = espeak_dir()  # fail early, with the install hint

    def synthesize(self, text: str, rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` at ``rate`` words/minute (80-450) and ``pitch`` (0-100); nothing trimmed.

        Deterministic: the same arguments give the same samples, whatever was synthesised before.
        """
        if not 80 <= rate <= 450:
            raise SnluError(f"speech rate must be within 80-450, got {rate}")
        if not 0 <= pitch <= 100:
            raise SnluError(f"pitch must be within 0-100, got {pitch}")
        with _LOCK:
            wav, sr = _espeak(self._dir, text, self.voice, int(rate), int(pitch))
        return resample(wav.astype(np.float32) / 32768.0, sr, SAMPLE_RATE)
