"""What the tasks that read audio share (asr, spoken_ner; e2e_ner through asr): before training, the global CMVN
statistics, ``audio_encoder.init_from`` and the dataset's feature cache; beside the weights, the CMVN saved as
``cmvn.json``.

    class MyTask(AudioTask, NERTask): ...    # a frontend section, a processor with ``audio`` (AudioFeatures)
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from snlu.data.processor import AudioFeatures
from snlu.data.utterance import Utterance
from snlu.tasks import io
from snlu.tasks.base import Task

log = logging.getLogger("snlu")


class AudioTask(Task):
    """Mixin of the audio tasks: a ``frontend`` (fbank + normalisation) built from the recipe's section and a
    processor whose ``audio`` (``AudioFeatures``) computes the features in the loader workers."""

    frontend: object  # (the module of the recipe's frontend section)

    def prepare(self, train: list[Utterance]) -> None:
        """Check (or build) the dataset's feature cache, global CMVN from ``frontend.cmvn`` or the training set, then
        ``audio_encoder.init_from``. A cache of a frozen encoder's outputs (``AudioFeatures.cached``) is built last,
        with the weights init_from copied."""
        super().prepare(train)
        audio: AudioFeatures = self.processor.audio
        cache = train[0].features if train else None
        of_frontend = audio.cached is audio.frontend  # the cache holds the frontend's features (CMVN reads them)
        if cache is not None and of_frontend:
            cache.ensure(audio.cached)  # every split of the dataset, here in the main process, before any worker
        frontend = self.frontend
        if getattr(frontend.cfg, "norm", None) == "global":
            if getattr(frontend.cfg, "cmvn", None):  # (a frontend plugin may have no such option)
                frontend.load_cmvn(Path(frontend.cfg.cmvn))
                log.info("global CMVN: read from %s", frontend.cfg.cmvn)
            else:
                frontend.fit_cmvn(audio.features(u)[0]
                                  for u in tqdm(train, desc="global CMVN", leave=False, mininterval=1.0))
        init = self.cfg.audio_encoder.get("init_from")
        if init:
            io.init_audio_from(self, Path(init))
        if cache is not None and audio.cached is not None and not of_frontend:
            cache.ensure(audio.cached)
        elif cache is not None and audio.cached is None:
            log.info("data.feature_cache: not used: the audio encoder reads the samples (only a frozen one's outputs "
                     "are cached)")

    def save_assets(self, out: Path) -> None:
        super().save_assets(out)
        self.frontend.save_cmvn(out / "cmvn.json")
