"""Audio frontends (fbank, normalisation, SpecAugment): an ``nn.Module`` kind with no base class of its own."""

from torch import nn

from snlu.registry import AUDIO_FRONTENDS

# Declared here, the package's first module to run, so before any of its components registers.
AUDIO_FRONTENDS.require(nn.Module)
