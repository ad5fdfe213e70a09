"""An exported folder's manifest, ``export.json``: what the folder holds, the graph's inputs and outputs, how to
prepare and decode around it. Torch-free: ``snlu.load`` and the commands read it to choose their path.

    model.onnx | model.pt2     the graph (waveforms and word-piece ids in, scores out)
    export.json                this manifest
    config.yaml                the recipe the model was trained with
    tokenizer.json             the text encoder's tokenizer (NER)
    labels.json, crf.json      BIO labels and the CRF's scores (NER; numpy Viterbi)
    vocab.json | units.model   the CTC output units (asr, e2e_ner), markers.json (e2e_ner)
    cmvn.json                  the frontend's global CMVN (already inside the graph; kept for reference)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snlu.core.errors import SnluError

MANIFEST = "export.json"
VERSION = 1  # of the folder layout; a runtime refuses a newer one


def is_exported(path: str | Path | None) -> bool:
    """Whether ``path`` is an exported folder (it holds ``export.json``)."""
    return path is not None and (Path(path) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an exported folder; one line naming the file when it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnluError(f"{path}: not found ({folder} is not an exported model: snlu-export writes one)") from None
    except (OSError, ValueError) as e:
        raise SnluError(f"{path}: not a readable manifest ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict) or "format" not in manifest or "graph" not in manifest:
        raise SnluError(f"{path}: not an snlu export manifest (no 'format' and 'graph')")
    if int(manifest.get("version", 0)) > VERSION:
        raise SnluError(f"{path}: layout version {manifest['version']} is newer than this snlu reads ({VERSION}): "
                        f"upgrade snlu")
    return manifest
