"""One training step of the tiny fusion_raw_all model on global batch 0, run alone or under torchrun.

``python ddp_worker.py OUT DEMO_DIR BATCH_SIZE`` writes ``OUT/rank<r>.safetensors`` (the weights after the
step) and ``OUT/grad<r>.safetensors`` (the gradients it stepped with: averaged over ranks, clipped) and
``OUT/rank<r>.json`` (the utterances this rank trained on). Dropout and SpecAugment are off (the
model is in eval mode), so one process on the global batch and N processes on its shards must agree.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from snlu.config import load_recipe  # noqa: E402
from snlu.core.seed import seed_everything  # noqa: E402
from snlu.data.batching import BucketBatchSampler  # noqa: E402
from snlu.plugins import load_builtins  # noqa: E402
from snlu.registry import DATASETS, TASKS  # noqa: E402
from snlu.testing import TINY_OVERRIDES  # noqa: E402
from snlu.training import distributed  # noqa: E402
from snlu.training.trainer import Trainer  # noqa: E402

RECIPE = Path(__file__).parents[2] / "recipes" / "fusion_raw_all.yaml"


def cfg_groups() -> tuple[str, ...]:
    return ("textual_encoder", "textual_crf", "audio_encoder", "audio_crf", "fusion_layer")


def main(out: Path, demo: Path, batch_size: int) -> None:
    torch.set_num_threads(1)
    load_builtins()
    place = distributed.init("cpu")
    cfg = load_recipe(RECIPE, [*TINY_OVERRIDES, f"data.train={demo}/train.jsonl", f"data.dev={demo}/dev.jsonl",
                               f"data.test={demo}/test.jsonl", f"data.audio_dir={demo}/wav", "train.device=cpu",
                               f"train.batch_size={batch_size}",
                               *(f"optim.lrs.{g}=1e-3" for g in cfg_groups())])
    seed_everything(cfg.seed)
    train = DATASETS.build(cfg.data).load()["train"]
    task = TASKS.get(cfg.task.name).cls.from_data(cfg, train)
    trainer = Trainer(task, cfg, out / f"run{place.rank}")
    sampler = BucketBatchSampler([task.processor.length(u) for u in train], batch_size, cfg.train.bucket_size, True,
                                 cfg.seed, place.rank, place.world_size)
    sampler.set_epoch(1)
    mine = [train[i] for i in sampler.batches()[0]]
    batch = task.processor.collate([task.processor.prepare(u) for u in mine])
    if place.main:
        save_file({k: v.contiguous() for k, v in task.state_dict().items()}, str(out / "init.safetensors"))
    task.eval()  # no dropout, no SpecAugment: the step is a function of the batch only
    trainer.train_step([batch], epoch=1, n=1)
    save_file({k: v.contiguous() for k, v in task.state_dict().items()}, str(out / f"rank{place.rank}.safetensors"))
    grads = {n: p.grad.contiguous() for n, p in task.named_parameters() if p.grad is not None}  # kept after step
    save_file(grads, str(out / f"grad{place.rank}.safetensors"))
    (out / f"rank{place.rank}.json").write_text(json.dumps([u.id for u in mine]))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
