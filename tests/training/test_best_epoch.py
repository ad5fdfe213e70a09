"""Which dev epoch is kept as best/: the task's main metric decides, its tie metric breaks a tie (e2e_ner: while
F1 is still 0, the epoch that predicts more entities), and a task without one keeps the first of equal epochs."""

from __future__ import annotations

from types import SimpleNamespace

from snlu.tasks.e2e_ner import E2ENERTask
from snlu.tasks.spoken_ner import SpokenNERTask
from snlu.training.trainer import Trainer


def better(task_cls, metrics, best):
    return Trainer.better(SimpleNamespace(task=task_cls), metrics, best)


def test_main_metric_decides_and_tie_metric_breaks_ties():
    assert better(E2ENERTask, {"f1": 0.0, "pred": 0}, None)
    assert better(E2ENERTask, {"f1": 0.1, "pred": 2}, {"f1": 0.0, "pred": 9})  # F1 first, whatever the count
    assert not better(E2ENERTask, {"f1": 0.0, "pred": 9}, {"f1": 0.1, "pred": 2})
    assert better(E2ENERTask, {"f1": 0.0, "pred": 7}, {"f1": 0.0, "pred": 0})  # tie: more entities emitted wins
    assert not better(E2ENERTask, {"f1": 0.0, "pred": 7}, {"f1": 0.0, "pred": 7})
    assert not better(E2ENERTask, {"f1": 0.0, "pred": 3}, {"f1": 0.0, "pred": 7})


def test_without_a_tie_metric_the_first_of_equal_epochs_stays():
    assert SpokenNERTask.tie_metric is None
    assert not better(SpokenNERTask, {"f1": 0.0}, {"f1": 0.0})
    assert better(SpokenNERTask, {"f1": 0.2}, {"f1": 0.1})
