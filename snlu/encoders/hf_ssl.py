"""``hf_ssl``: a pretrained wav2vec 2.0, HuBERT, WavLM or data2vec-audio model from a local folder
(transformers' ``AutoModel``), as the audio encoder (snlu/encoders/ssl.py: layers, freezing, pooling).

The samples are normalised as the folder's preprocessor_config.json says (``do_normalize``: zero mean and unit
variance over each utterance's real samples, transformers' ``zero_mean_unit_var_norm``). A padded batch gives each
utterance what it gives alone only for the models with a layer-norm feature encoder (``feat_extract_norm: layer``)
run with the attention mask; the group-norm ones (the base models) normalise over the padding, and data2vec's
stacked positional convolutions carry it into the last frames. ``exact_batches`` (default) runs those one
utterance at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import Tensor, nn

from snlu.core.checks import in_range
from snlu.core.errors import ConfigError
from snlu.core.schema import recipe_own
from snlu.core.tensors import lengths_mask, pad
from snlu.encoders.ssl import SSLConfig, SSLEncoder, has_weights, quiet_transformers, trains_backbone
from snlu.registry import AUDIO_ENCODERS

log = logging.getLogger("snlu")
MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@dataclasses.dataclass
class HFSSLConfig(SSLConfig):
    """``mask_time_prob``: the model's own SpecAugment-like masking of time steps in training (0: off, as suits
    NER; 0.05 is the usual for ASR fine-tuning). ``exact_batches``: run the models whose padded batches differ
    from their utterances alone one utterance at a time (false: padded batches, faster on a GPU)."""

    mask_time_prob: float = dataclasses.field(default=0.0, metadata=recipe_own())
    exact_batches: bool = True

    model_types = MODEL_TYPES
    elsewhere = " (whisper: audio_encoder.name=whisper_encoder)"

    def __post_init__(self) -> None:
        super().__post_init__()
        in_range(self, "mask_time_prob", 0.0, 1.0)
        if self.mask_time_prob and not trains_backbone(self):
            raise ValueError("mask_time_prob: a model frozen with freeze: all runs in eval mode, unmasked")


@AUDIO_ENCODERS.register("hf_ssl", config=HFSSLConfig)
class HFSSLEncoder(SSLEncoder):
    """wav2vec 2.0 / HuBERT / WavLM / data2vec-audio from a local folder (layer, weighted sum, freezing)."""

    kind = "hf_ssl"
    training_only_tensors = ("model.masked_spec_embed",)  # exists when mask_time_prob > 0 (init_from may lack it)

    def load(self, cfg: HFSSLConfig) -> nn.Module:
        quiet_transformers()
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        config = AutoConfig.from_pretrained(cfg.path, local_files_only=True)
        self.force_no_layerdrop(config)
        config.mask_time_prob = cfg.mask_time_prob
        config.mask_feature_prob = 0.0
        config.apply_spec_augment = cfg.mask_time_prob > 0
        if getattr(config, "add_adapter", False):
            raise ConfigError(f"audio_encoder.path: {cfg.path}: models with an adapter (add_adapter) are not supported")
        if has_weights(cfg.path):
            model = AutoModel.from_pretrained(cfg.path, config=config, local_files_only=True, dtype=torch.float32)
        else:
            model = AutoModel.from_config(config)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(cfg.path, local_files_only=True)
        if getattr(self.feature_extractor, "sampling_rate", 16000) != 16000:
            raise ConfigError(f"audio_encoder.path: {cfg.path}: the model reads {self.feature_extractor.sampling_rate} "
                             "Hz audio; snlu's audio is 16 kHz")
        self.normalize = bool(getattr(self.feature_extractor, "do_normalize", False))
        self.use_mask = bool(getattr(self.feature_extractor, "return_attention_mask", False))
        # exact in a padded batch: a layer-norm feature encoder, with the mask (data2vec's positional convs leak)
        self.batch_exact = config.model_type != "data2vec-audio" and config.feat_extract_norm == "layer"
        self.batched = self.batch_exact or not cfg.exact_batches
        if not self.batched:
            log.debug("audio_encoder: %s runs one utterance at a time (exact_batches)", config.model_type)
        elif not self.batch_exact:
            log.warning("audio_encoder: %s (%s) gives an utterance other outputs in a padded batch than alone: with "
                        "exact_batches=false predictions depend on the batch", cfg.path, config.model_type)
        return model

    def num_states(self) -> int:
        return self.model.config.num_hidden_layers + 1

    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def frame_samples(self) -> int:
        return int(torch.tensor(self.model.config.conv_stride).prod())

    def feature_encoder(self) -> nn.Module:
        return self.model.feature_extractor

    def model_frames(self, lengths: Tensor) -> Tensor:
        return self.model._get_feat_extract_output_lengths(lengths).long()

    def input_settings(self) -> dict[str, Any]:
        return {"normalize": self.normalize}

    def normalized(self, wave: Tensor, lengths: Tensor) -> Tensor:
        """Zero mean, unit variance over each utterance's real samples (as the feature extractor); padding 0."""
        mask = lengths_mask(lengths, wave.shape[1]).to(wave.dtype)
        if not self.normalize:
            return wave * mask
        n = lengths.clamp_min(1).to(wave.dtype)[:, None]
        mean = (wave * mask).sum(1, keepdim=True) / n
        var = (((wave - mean) * mask) ** 2).sum(1, keepdim=True) / n
        return (wave - mean) / torch.sqrt(var + 1e-7) * mask

    def backbone(self, wave: Tensor, lengths: Tensor) -> list[Tensor]:
        x = self.normalized(wave, lengths)
        frames = self.model_frames(lengths)
        masked = self.time_masks(frames, int(self.model_frames(torch.tensor(x.shape[1]))))
        if self.batched:
            mask = lengths_mask(lengths, x.shape[1]).long() if self.use_mask or self.batch_exact else None
            return self.hidden(x, mask, masked)
        alone = [self.hidden(x[b : b + 1, :n], None, None if masked is None else masked[b : b + 1, : frames[b]])
                 for b, n in enumerate(lengths.tolist())]
        return [pad([states[i][0] for states in alone]) for i in range(len(alone[0]))]

    def time_masks(self, frames: Tensor, t: int) -> Tensor | None:
        """(B, T) time steps to mask (training, ``mask_time_prob`` > 0), drawn for the whole batch by the models'
        own rule over each utterance's real frames, so that one utterance at a time masks as the batch would."""
        config = self.model.config
        if not (self.model.training and self.cfg.mask_time_prob > 0) or t < config.mask_time_length:
            return None
        from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

        real = lengths_mask(frames.cpu(), t)
        masked = _compute_mask_indices((len(frames), t), config.mask_time_prob, config.mask_time_length,
                                       attention_mask=real, min_masks=config.mask_time_min_masks)
        return torch.as_tensor(masked, dtype=torch.bool, device=frames.device)

    def hidden(self, x: Tensor, mask: Tensor | None, masked: Tensor | None) -> list[Tensor]:
        """The hidden states the layer choice reads, of one forward."""
        return self.kept(self.model(x, attention_mask=mask, mask_time_indices=masked,
                                    output_hidden_states=self.wants_hidden_states))
