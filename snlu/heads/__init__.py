"""Heads (CRF taggers, CTC): an ``nn.Module`` kind with no base class of its own."""

from torch import nn

from snlu.registry import HEADS

# Declared here, the package's first module to run, so before any of its components registers.
HEADS.require(nn.Module)
