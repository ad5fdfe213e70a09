"""The dataset contract (recipe section ``data``): a registered class built from its config that reads the
splits a run trains, selects and tests on.

    @DATASETS.register("my_corpus", config=MyConfig)
    class MyCorpus(Dataset):
        '''One line for snlu-list.'''

        def load(self, with_audio: bool = True) -> dict[str, list[Utterance]]:
            return {"train": [...], "dev": [...], "test": [...]}
"""

from __future__ import annotations

from typing import Any

from snlu.data.utterance import Utterance
from snlu.registry import DATASETS


class Dataset:
    """Base class of the ``data`` kind: built as ``cls(cfg)``; ``load`` gives each split's utterances."""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def load(self, with_audio: bool = True) -> dict[str, list[Utterance]]:
        """``{"train", "dev", "test"}`` -> utterances; ``with_audio`` False: the task reads no audio (the
        utterances need no audio path resolved)."""
        raise NotImplementedError


DATASETS.require(Dataset)
