"""One checked utterance, what every reader produces and every task prepares."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np


class FeatureSource(Protocol):
    """Where an utterance's features come from instead of its audio (the dataset's feature cache,
    :class:`snlu.data.features.FeatureCache`)."""

    def load(self, utt: Utterance, frontend: Any) -> tuple[Any, int]:
        """(T, F) features of ``utt`` computed by ``frontend``, and its number of samples."""


@dataclasses.dataclass
class Utterance:
    """One checked line: audio resolved to a path, entities flattened per the recipe's policy."""

    id: str
    sentence: str
    audio: str | None  # resolved path, None when the task does not use audio
    duration: float  # seconds (0 without audio)
    entities: list[tuple[int, int, str]]
    nested: list[tuple[int, int, str]]  # every span of the line, before flattening
    record: dict[str, Any]  # the original JSON object, carried along (speaker_info ...)
    where: str  # "file:line", for messages
    # Pre-loaded 16 kHz samples (the Python API's in-memory audio); None: read ``audio`` when needed.
    wave: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    # The dataset's feature cache (``data.feature_cache``); None: compute the features from the audio.
    features: FeatureSource | None = dataclasses.field(default=None, repr=False, compare=False)
