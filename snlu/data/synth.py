"""Mandarin text-to-speech through espeak-ng, for the built-in demo corpora, with espeak's own word timings.

The `espeakng-loader` wheel ships ``libespeak-ng.so`` and its data folder; we drive the library
directly with ctypes (finding the wheel's folder without importing it), so no system install is
needed.

espeak-ng keeps hidden state between utterances (a function-static pitch "flutter" index that
nothing resets), so the same text would sound slightly different depending on what was said
before. To make every utterance a pure function of (text, voice, rate, pitch, volume) we load a fresh copy
of the library for each one and unload it afterwards; that costs about 4 ms. It assumes nothing
else in the process holds libespeak-ng open (if something does, output is merely not bit-exact).
Breathy voice variants (f2, f3, f5) draw noise from espeak's own generator, which it seeds from the clock
at start-up: we seed it with a constant (``espeak_ng_SetRandSeed``) before each utterance.

Timings: in synchronous mode espeak hands the synth callback, with each audio chunk, an array of
``espeak_EVENT`` structs ending with type 0. Its WORD events carry ``text_position``, the 1-based
*character* (not byte) position of the word in the UTF-8 input, and ``sample``, the number of samples
(at espeak's native rate) output before the word starts. For Mandarin a WORD event starts nearly every
character; a dictionary word with its own pronunciation (e.g. 银行 "yin hang") gets one event for all of its
characters, and a run of digits gets several events at one position (one per spoken number word).
:func:`word_timings` turns them into ``[char_start, char_end, start_ms, end_ms]`` entries covering the
text. Milliseconds survive the resampling to 16 kHz.
"""

from __future__ import annotations

import _ctypes
import ctypes
import dataclasses
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
_RATE, _VOLUME, _PITCH = 1, 2, 3
_EE_OK = 0
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1

_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h (the trailing union is 8 bytes: an int, a char[8] or a pointer)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


# espeak-ng is one global C state per process: one utterance at a time.
_LOCK = threading.Lock()
_chunks: list[np.ndarray] = []
_words: list[tuple[int, int]] = []  # (text_position, sample) of each WORD event, in order


def _collect(wav: ctypes._Pointer, n: int, events: int | None) -> int:
    if n > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())  # espeak reuses the buffer
    if events:
        array = ctypes.cast(events, ctypes.POINTER(_Event))
        i = 0
        while array[i].type != _EVENT_LIST_TERMINATED:
            if array[i].type == _EVENT_WORD:
                _words.append((array[i].text_position, array[i].sample))
            i += 1
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


def _espeak(d: Path, text: str, voice: str, rate: int, pitch: int,
            volume: int | None = None) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """int16 samples at espeak's native rate, the rate, and the WORD events' (text_position, sample), from a
    freshly loaded library (see module doc); ``volume`` None leaves espeak's default (100)."""
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
        if volume is not None:
            lib.espeak_SetParameter(_VOLUME, volume, 0)
        _chunks.clear()
        _words.clear()
        seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.52; older: breath noise varies
        if seed is not None:
            seed.argtypes = [ctypes.c_long]
            seed(1)
        data = text.encode("utf-8")
        err = lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != _EE_OK:
            raise SnluError(f"espeak-ng failed (error {err}) on text {text!r}")
        wav = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
        words = list(_words)
        _chunks.clear()
        _words.clear()
        return wav, sr, words
    finally:
        lib.espeak_Terminate()
        _unload(lib)


def word_timings(words: list[tuple[int, float]], n_chars: int, total_ms: float) -> list[list[int]]:
    """``[char_start, char_end, start_ms, end_ms]`` entries that tile ``[0, n_chars)`` from WORD events.

    ``words`` are ``(char_start, start_ms)`` (0-based characters) in the order espeak emitted them. Events
    at the position of the previous one (a number spoken as several words) merge into it; a position that
    does not advance, or lies outside the text, is dropped; times never go back. An entry ends where the
    next begins (characters and time); the last ends at ``n_chars`` and ``total_ms`` (the end of the
    audio). Characters before the first event (none seen in practice) join the first entry, which then
    starts at 0 ms.
    """
    starts: list[tuple[int, float]] = []
    for char, ms in words:
        if 0 <= char < n_chars and (not starts or char > starts[-1][0]):
            starts.append((char, max(ms, starts[-1][1]) if starts else ms))
    if n_chars <= 0:
        return []
    if not starts:
        return [[0, n_chars, 0, round(total_ms)]]
    if starts[0][0] > 0:
        starts[0] = (0, 0.0)
    ends = [*starts[1:], (n_chars, max(total_ms, starts[-1][1]))]
    return [[c, c_end, round(ms), round(ms_end)] for (c, ms), (c_end, ms_end) in zip(starts, ends)]


@dataclasses.dataclass
class Speech:
    """One synthesised utterance: 16 kHz float32 audio and espeak's timing of its characters."""

    audio: np.ndarray
    timings: list[list[int]]  # [char_start, char_end, start_ms, end_ms], tiling the text (see word_timings)


class Synthesizer:
    """Mandarin TTS (espeak-ng ``cmn`` voice) returning float32 mono audio at 16 kHz; thread-safe."""

    def __init__(self, voice: str = "cmn") -> None:
        self.voice = voice
        self._dir = espeak_dir()  # fail early, with the install hint

    def synthesize(self, text: str, rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` at ``rate`` words/minute (80-450) and ``pitch`` (0-100); nothing trimmed.

        Deterministic: the same arguments give the same samples, whatever was synthesised before.
        """
        return self.speak(text, rate, pitch).audio

    def speak(self, text: str, rate: int = 175, pitch: int = 50, volume: int | None = None,
              variant: str | None = None) -> Speech:
        """Like :meth:`synthesize`, with espeak's timings; ``volume`` 0-200 (None: espeak's default, 100),
        ``variant`` a voice variant of espeak-ng-data/voices/!v (``f1``, ``m3``, ``klatt``...; None: none)."""
        if not 80 <= rate <= 450:
            raise SnluError(f"speech rate must be within 80-450, got {rate}")
        if not 0 <= pitch <= 100:
            raise SnluError(f"pitch must be within 0-100, got {pitch}")
        if volume is not None and not 0 <= volume <= 200:
            raise SnluError(f"volume must be within 0-200, got {volume}")
        voice = f"{self.voice}+{variant}" if variant else self.voice
        with _LOCK:
            wav, sr, words = _espeak(self._dir, text, voice, int(rate), int(pitch),
                                     None if volume is None else int(volume))
        timings = word_timings([(pos - 1, sample * 1000 / sr) for pos, sample in words], len(text),
                               len(wav) * 1000 / sr)
        return Speech(resample(wav.astype(np.float32) / 32768.0, sr, SAMPLE_RATE), timings)
