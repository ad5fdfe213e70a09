"""Losses (the multitask objective): an ``nn.Module`` kind with no base class of its own."""

from torch import nn

from snlu.registry import LOSSES

# Declared here, the package's first module to run, so before any of its components registers.
LOSSES.require(nn.Module)
