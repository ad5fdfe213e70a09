"""The feature cache: a frontend's features of every utterance computed once, in parallel, memory-mapped.

``data.feature_cache: DIR`` (or ``snlu-prepare ... --features``, which writes ``OUT/features``) holds one
folder per frontend setting::

    fbank-<hash>/settings.json         what the features were computed with (frontend options, format)
    fbank-<hash>/<split>.json          index: audio path -> [offset, frames, samples, size, mtime_ns], and
                                       the per-bin sum and squared sum of the (float32) frames, for CMVN
    fbank-<hash>/<split>-<token>.f16   the split's frames, float16, concatenated (frames x dim), raw

Changing a frontend option (``frontend.num_mel_bins=80``) builds a new folder beside the old one. A split
is rebuilt when an utterance it needs is not in its index or its audio file changed (size or mtime). The
index is the commit point: written last, atomically, naming a data file with a fresh token, so an
interrupted build leaves only a stray data file (removed by the next build), never a cache that looks valid.

The dataset attaches one :class:`FeatureCache` to its utterances (``Utterance.features``); the task checks
it against its frontend once (``ensure``, in ``Task.prepare``: builds what is missing or stale) and
``Task.prepare_audio`` then reads frames instead of decoding audio, in the data-loader workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from snlu.core.errors import ConfigError, DataError
from snlu.data.audio import read_wav
from snlu.data.utterance import Utterance

log = logging.getLogger("snlu")
FORMAT = 1  # bump when the stored layout or the meaning of an entry changes
DTYPE = np.float16
CHUNK = 16  # utterances per worker task
KEY = "data.feature_cache"


def cache_settings(frontend: Any) -> dict[str, Any]:
    """The frontend's ``feature_settings()`` plus the storage format; refuses a frontend that cannot be cached."""
    settings = getattr(frontend, "feature_settings", None)
    if settings is None:
        raise ConfigError(f"{KEY}: frontend {type(frontend).__name__} cannot be cached (it has no feature_settings())")
    out = {**settings(), "format": FORMAT, "dtype": np.dtype(DTYPE).name}
    if out.get("dither"):
        raise ConfigError(f"{KEY}: frontend.dither={out['dither']} draws new noise at every computation; cached "
                          "features would repeat one draw (set frontend.dither=0 or data.feature_cache=null)")
    return out


def settings_folder(root: Path, settings: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return root / f"{settings.get('frontend', 'features')}-{digest}"


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time checks and builds a settings folder (parallel runs sharing a cache wait)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        fh = open(folder / ".lock", "a")  # closed by the with below
    except OSError:  # a read-only cache: nothing will be written, nothing to guard
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class FeatureFile:
    """One built split: its index and its frames, memory-mapped on first read in each process."""

    def __init__(self, folder: Path, index: dict[str, Any]):
        self.folder, self.index = folder, index
        self.path = folder / index["data"]
        self.dim, self.frames = int(index["dim"]), int(index["frames"])
        self.entries: dict[str, list[int]] = index["utterances"]
        self._data: np.ndarray | None = None

    @classmethod
    def open(cls, folder: Path, split: str, settings: dict[str, Any]) -> tuple[FeatureFile | None, str]:
        """The split's file, or None and why it is unusable."""
        try:
            index = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "not built yet"
        except (OSError, ValueError) as e:
            return None, f"unreadable index ({e})"
        if not isinstance(index, dict) or index.get("settings") != settings:
            return None, "index of other settings"
        try:
            file = cls(folder, index)
        except (KeyError, TypeError, ValueError) as e:
            return None, f"unreadable index ({type(e).__name__}: {e})"
        size = file.path.stat().st_size if file.path.is_file() else -1
        if size != file.frames * file.dim * np.dtype(DTYPE).itemsize:
            return None, f"data file {file.path.name} missing or of the wrong size (interrupted build?)"
        return file, ""

    def stale(self, utts: list[Utterance]) -> str:
        """Why the file does not serve ``utts`` ('' when it does): an utterance missing, or its audio changed."""
        for u in utts:
            entry = self.entries.get(u.audio)
            if entry is None:
                return f"{u.audio} not in the cache"
            if tuple(entry[3:5]) != _stat(u.audio):
                return f"{u.audio} changed since the cache was built"
        return ""

    def read(self, offset: int, frames: int) -> torch.Tensor:
        """(frames, dim) float32 features starting at frame ``offset``."""
        if self._data is None:
            self._data = (np.memmap(self.path, dtype=DTYPE, mode="r", shape=(self.frames, self.dim))
                          if self.frames else np.zeros((0, self.dim), dtype=DTYPE))
        return torch.from_numpy(self._data[offset : offset + frames].astype(np.float32))

    def __getstate__(self) -> dict[str, Any]:  # a spawned worker maps the file itself (never pickle the frames)
        return {**self.__dict__, "_data": None}


# ----------------------------------------------------------------------------- building

_FRONTEND: Any = None  # the frontend of a build worker process


def _init_worker(frontend: Any) -> None:
    global _FRONTEND
    torch.set_num_threads(1)
    _FRONTEND = frontend


def _featurize(paths: list[str], frontend: Any = None) -> list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]:
    """Per path: float16 frames, the sample count, and the float64 sum and squared sum of the float32 frames."""
    frontend = frontend if frontend is not None else _FRONTEND
    out = []
    for path in paths:
        wave = read_wav(path)
        if frontend.num_frames(len(wave)) > 0:
            feats = frontend.featurize(wave).numpy()
        else:  # shorter than one window: stored as 0 frames; prepare_audio says it is too short
            feats = np.zeros((0, frontend.dim), dtype=np.float32)
        f64 = feats.astype(np.float64)
        out.append((feats.astype(DTYPE), len(wave), f64.sum(0), (f64 * f64).sum(0)))
    return out


def _chunks(paths: list[str], frontend: Any, workers: int) -> Iterator[list[tuple]]:
    """``_featurize`` over chunks of ``paths``, in order; in ``workers`` processes, at most 4 chunks each ahead."""
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        yield from (_featurize(c, frontend) for c in chunks)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(frontend,)) as pool:
        pending: deque[Future] = deque()
        for chunk in chunks:
            pending.append(pool.submit(_featurize, chunk))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build_split(folder: Path, split: str, utts: list[Utterance], frontend: Any, settings: dict[str, Any],
                workers: int | None = None) -> None:
    """Compute and store the features of ``utts``' audio (each file once) in ``folder``."""
    paths = list(dict.fromkeys(u.audio for u in utts))
    # a frontend may ask for its own number (a frozen speech model: 1, in this process, with all its threads)
    workers = getattr(frontend, "build_workers", None) or workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(paths) // CHUNK))
    token = uuid.uuid4().hex[:8]
    data = folder / f"{split}-{token}.f16"
    entries: dict[str, list[int]] = {}
    total, sq, offset = np.zeros(frontend.dim), np.zeros(frontend.dim), 0
    try:
        with open(data, "wb") as fh, tqdm(total=len(paths), desc=f"features {split}", unit="utt", leave=False,
                                          mininterval=1.0) as bar:
            done = 0
            for results in _chunks(paths, frontend, workers):
                for feats, samples, s, s2 in results:
                    path = paths[done]
                    fh.write(feats.tobytes())
                    entries[path] = [offset, len(feats), samples, *_stat(path)]
                    offset, total, sq, done = offset + len(feats), total + s, sq + s2, done + 1
                bar.update(len(results))
            fh.flush()
            os.fsync(fh.fileno())
        index = {"format": FORMAT, "settings": settings, "split": split, "data": data.name, "dim": frontend.dim,
                 "frames": offset, "sum": total.tolist(), "sumsq": sq.tolist(), "utterances": entries}
        _write_json_atomic(folder / f"{split}.json", index)  # the commit point
    except BaseException:
        data.unlink(missing_ok=True)
        raise
    for old in folder.glob(f"{split}-{'?' * len(token)}.f16"):  # data files of earlier (or interrupted) builds
        if old != data:
            old.unlink(missing_ok=True)
    log.info("feature cache: %s/%s.json: %d utterances, %d frames, %.1f MB", folder, split, len(paths), offset,
             data.stat().st_size / 1e6)


# ----------------------------------------------------------------------------- the dataset's handle


class FeatureCache:
    """The cache of one dataset's splits under ``root``; each of their utterances points at it."""

    def __init__(self, root: str | Path, workers: int | None = None):
        self.root, self.workers = Path(root), workers
        self.splits: dict[str, list[Utterance]] = {}
        self._settings: dict[str, Any] | None = None
        self._where: dict[str, tuple[FeatureFile, int, int, int]] = {}  # audio path -> file, offset, frames, samples

    def add(self, split: str, utts: list[Utterance]) -> None:
        """Serve ``utts`` (with audio) from the cache: sets their ``features``."""
        self.splits[split] = utts
        for u in utts:
            u.features = self

    def ensure(self, frontend: Any, build: bool = True) -> Path:
        """Check every split against ``frontend``'s settings and its audio files; build what is missing or stale
        (``build=False``: refuse instead). Returns the settings folder."""
        settings = cache_settings(frontend)
        folder = settings_folder(self.root, settings)
        if settings == self._settings:
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{KEY}: cannot create {folder}: {e}") from None
        where: dict[str, tuple[FeatureFile, int, int, int]] = {}
        with _locked(folder):
            if not (folder / "settings.json").is_file():
                _write_json_atomic(folder / "settings.json", settings)
            for split, utts in self.splits.items():
                file, why = FeatureFile.open(folder, split, settings)
                why = why or file.stale(utts)
                if why:
                    if not build:
                        raise ConfigError(f"{KEY}: {folder}/{split}.json: {why} (rebuild it: run the training "
                                          "command, which builds it, or snlu-prepare ... --features)")
                    level = logging.INFO if why == "not built yet" else logging.WARNING
                    log.log(level, "feature cache %s/%s: %s: building it (%d utterances)", folder, split, why,
                            len(utts))
                    build_split(folder, split, utts, frontend, settings, self.workers)
                    file, why = FeatureFile.open(folder, split, settings)
                    assert file is not None, why
                for u in utts:
                    offset, frames, samples = file.entries[u.audio][:3]
                    where[u.audio] = (file, offset, frames, samples)
        self._where, self._settings = where, settings
        log.info("feature cache: %s (%s)", folder, ", ".join(f"{s} {len(u)}" for s, u in self.splits.items()))
        return folder

    def load(self, utt: Utterance, frontend: Any) -> tuple[torch.Tensor, int]:
        """(T, F) features of ``utt`` and its sample count (checked against ``frontend`` on first use; a
        data-loader worker never builds)."""
        if self._settings is None or cache_settings(frontend) != self._settings:
            self.ensure(frontend, build=torch.utils.data.get_worker_info() is None)
        found = self._where.get(utt.audio)
        if found is None:
            raise DataError(utt.where, f"audio {utt.audio} is not in the feature cache {self.root}", field="audio")
        file, offset, frames, samples = found
        return file.read(offset, frames), samples

    def __getstate__(self) -> dict[str, Any]:  # a spawned worker needs the lookup table, not the utterances
        return {**self.__dict__, "splits": {}}
