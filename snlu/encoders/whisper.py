"""``whisper_encoder``: the encoder of a Whisper model from a local folder, as the audio encoder
(snlu/encoders/ssl.py: layers, freezing, pooling).

Whisper's encoder reads one fixed window (``max_source_positions`` x 2 log-mel frames: 30 s for the released
models) and no attention mask. Each utterance is cut into windows of at most that length, each window is padded
with zeros (as Whisper's feature extractor pads to 30 s), and only the frames of its real samples are kept: an
utterance's frames do not depend on the batch. The log-mel is the feature extractor's (its filters, window and
hop; the log clamped 8 below each window's maximum, then (x + 4) / 4), computed on the model's device.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snlu.encoders.ssl import SSLConfig, SSLEncoder, has_weights, quiet_transformers
from snlu.registry import AUDIO_ENCODERS


@dataclasses.dataclass
class WhisperEncoderConfig(SSLConfig):
    """The options every pretrained speech encoder has (Whisper has no SpecAugment-like masking of its own)."""

    model_types = ("whisper",)
    elsewhere = " (wav2vec2, hubert, wavlm, data2vec-audio: audio_encoder.name=hf_ssl)"


@AUDIO_ENCODERS.register("whisper_encoder", config=WhisperEncoderConfig)
class WhisperAudioEncoder(SSLEncoder):
    """Whisper's encoder from a local folder, over windows of at most 30 s (layer, weighted sum, freezing)."""

    kind = "whisper_encoder"

    def load(self, cfg: WhisperEncoderConfig) -> nn.Module:
        quiet_transformers()
        from transformers import AutoConfig, AutoModel, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = AutoConfig.from_pretrained(cfg.path, local_files_only=True)
        self.force_no_layerdrop(config, "encoder_layerdrop")
        if has_weights(cfg.path):
            whole = AutoModel.from_pretrained(cfg.path, config=config, local_files_only=True, dtype=torch.float32)
            model = whole.get_encoder()
            del whole  # the decoder is not needed
        else:
            model = WhisperEncoder(config)
        model.embed_positions.requires_grad_(False)  # fixed sinusoids (a buffer in Whisper; loading turns it on)
        self.feature_extractor = WhisperFeatureExtractor.from_pretrained(cfg.path, local_files_only=True)
        fe = self.feature_extractor
        self.hop = fe.hop_length
        self.window_frames = config.max_source_positions * model.conv1.stride[0] * model.conv2.stride[0]
        self.register_buffer("mel_filters", torch.tensor(fe.mel_filters, dtype=torch.float32), persistent=False)
        self.register_buffer("stft_window", torch.hann_window(fe.n_fft), persistent=False)
        return model

    def num_states(self) -> int:
        return self.model.config.encoder_layers + 1

    def hidden_size(self) -> int:
        return self.model.config.d_model

    def frame_samples(self) -> int:
        return self.hop * self.model.conv1.stride[0] * self.model.conv2.stride[0]

    def feature_encoder(self) -> list[nn.Module]:
        return [self.model.conv1, self.model.conv2]

    def window_out(self, samples: Tensor) -> Tensor:
        """Encoder frames of a window with ``samples`` real samples: its mel frames (those centred on real
        samples, as the feature extractor's attention mask counts them) through the model's convolutions."""
        mel = (samples + self.hop - 1) // self.hop
        return self.model._get_feat_extract_output_lengths(mel).long() * (samples > 0)

    def model_frames(self, lengths: Tensor) -> Tensor:
        win = self.window_frames * self.hop
        full, rest = lengths // win, lengths % win
        return full * self.window_out(torch.tensor(win)) + self.window_out(rest)

    def log_mel(self, wave: Tensor) -> Tensor:
        """(N, S) windows -> (N, n_mels, S // hop) normalised log-mel, as WhisperFeatureExtractor computes it."""
        fe = self.feature_extractor
        stft = torch.stft(wave.float(), fe.n_fft, self.hop, window=self.stft_window, return_complex=True)
        power = stft[..., :-1].abs() ** 2  # (N, F, T)
        log_spec = torch.clamp(self.mel_filters.T @ power, min=1e-10).log10()  # (N, n_mels, T)
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0

    def backbone(self, wave: Tensor, lengths: Tensor) -> list[Tensor]:
        win = self.window_frames * self.hop
        windows, kept, where = [], [], []  # the padded windows, their kept frames, (utterance, first frame)
        for b, n in enumerate(lengths.tolist()):
            offset = 0
            for start in range(0, max(n, 1), win):
                piece = wave[b, start : min(start + win, n)]
                windows.append(F.pad(piece, (0, win - piece.shape[0])))
                kept.append(int(self.window_out(torch.tensor(piece.shape[0]))))
                where.append((b, offset))
                offset += kept[-1]
        mel = self.log_mel(torch.stack(windows)).to(wave.dtype)
        hidden = self.kept(self.model(mel, output_hidden_states=self.wants_hidden_states))  # each (N, window / 2, D)
        t = max(o + k for (_, o), k in zip(where, kept))
        result = []
        for h in hidden:
            x = h.new_zeros(len(lengths), t, h.shape[-1])
            for w, ((b, offset), k) in enumerate(zip(where, kept)):
                x[b, offset : offset + k] = h[w, :k]
            result.append(x)
        return result
