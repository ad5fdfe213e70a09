"""What the tasks that read audio share (asr, spoken_ner; e2e_ner through asr): before training, the dataset's
feature cache, the global CMVN statistics and ``audio_encoder.init_from``; beside the weights, the CMVN saved as
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
        """Check (or build) the dataset's feature cache for the processor's frontend, then global CMVN from
        ``frontend.cmvn`` or the training set, then ``audio_encoder.init_from``."""
        super().prepare(train)
        audio: AudioFeatures = self.processor.audio
        cache = train[0].features if train else None
        if cache is not None:
            cache.ensure(audio.frontend)  # every split of the dataset, here in the main process, before any worker
        frontend = self.frontend
        if frontend.cfg.norm == "global":
            if getattr(frontend.cfg, "cmvn", None):  # (a frontend plugin may have no such option)
                frontend.load_cmvn(Path(frontend.cfg.cmvn))
                log.info("global CMVN: read from %s", frontend.cfg.cmvn)
            else:
                frontend.fit_cmvn(audio.features(u)[0]
                                  for u in tqdm(train, desc="global CMVN", leave=False, mininterval=1.0))
        init = self.cfg.audio_encoder.get("init_from")
        if init:
            io.init_audio_from(self, Path(init))

    def save_assets(self, out: Path) -> None:
        super().save_assets(out)
        self.frontend.save_cmvn(out / "cmvn.json")
