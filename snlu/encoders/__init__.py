"""Text encoders (BERT) and audio encoders (transformer, conformer, their subsampling): ``nn.Module`` kinds with
no base class of their own."""

from torch import nn

from snlu.registry import AUDIO_ENCODERS, TEXT_ENCODERS

# Declared here, the package's first module to run, so before any of its components registers.
TEXT_ENCODERS.require(nn.Module)
AUDIO_ENCODERS.require(nn.Module)
