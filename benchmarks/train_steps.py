"""``snlu-train`` that stops each training epoch after K batches: ``python benchmarks/train_steps.py K RECIPE ...``.

The trainer has no step limit (a ``train.max_steps`` option would replace this), so the benchmark cuts the
shuffled batch sampler's order to its first K batches; everything else (loading every utterance of the
manifests, the model, the DataLoader workers, dev and test evaluation) is the real ``snlu-train``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

from snlu.training.batching import BucketBatchSampler


def main() -> None:
    steps = int(sys.argv[1])
    full_iter = BucketBatchSampler.__iter__

    def first_batches(self: BucketBatchSampler) -> Iterator[list[int]]:
        it = full_iter(self)
        return itertools.islice(it, steps) if self.shuffle else it  # evaluation loaders keep every batch

    BucketBatchSampler.__iter__ = first_batches  # type: ignore[method-assign]
    from snlu.cli.train import main as train

    sys.exit(train(sys.argv[2:]))


if __name__ == "__main__":
    main()
