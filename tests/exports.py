"""Tiny trained models of every exportable task, each trained and exported once per test session: the
``trained`` and ``exported`` fixtures of tests/conftest.py (tests/export, tests/cli/test_export.py)."""

from __future__ import annotations

from pathlib import Path

RECIPES = Path(__file__).parents[1] / "recipes"
# name -> (recipe, extra overrides): one or two training steps on the tiny demo corpus
MODELS = {
    "raw_all": ("fusion_raw_all.yaml", []),
    "tokenized_all": ("fusion_tokenized_all.yaml", []),
    "tokenized_dpmask": ("fusion_tokenized_dpmask.yaml", ["frontend.norm=global"]),  # + CMVN inside the graph
    "text": ("text_only.yaml", []),
    "asr": ("asr_pretrain.yaml", ["frontend.norm=utterance_bins"]),
    "e2e": ("e2e_ner.yaml", []),
}
# exported name -> (model, snlu-export options)
EXPORTS = {
    "raw_all": ("raw_all", []),
    "tokenized_all": ("tokenized_all", []),
    "tokenized_dpmask": ("tokenized_dpmask", []),
    "text_graph": ("text", ["--decode", "graph"]),  # the CRF's Viterbi inside the graph (an ONNX Scan)
    "asr": ("asr", []),
    "asr_pt2": ("asr", ["--format", "pt2"]),
    "e2e": ("e2e", []),
}


def trained_models(tmp_path_factory, tiny, demo_overrides):
    """``trained(name)``: the run directory of model ``name`` (trained on first use)."""
    from snlu.cli.train import main

    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            recipe, extra = MODELS[name]
            over = [o for o in tiny if not o.startswith("audio_encoder")] if name == "text" else tiny
            run = tmp_path_factory.mktemp(f"run_{name}") / "run"
            assert main([str(RECIPES / recipe), *over, *demo_overrides, *extra, "--output-dir", str(run)]) == 0
            runs[name] = run
        return runs[name]

    return get


def exported_models(tmp_path_factory, trained):
    """``exported(name)``: (run directory, exported folder) of export ``name`` (exported on first use)."""
    from snlu.cli.export import main

    folders: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in folders:
            model, options = EXPORTS[name]
            run = trained(model)
            out = tmp_path_factory.mktemp(f"export_{name}") / "exported"
            assert main([str(run), "--out", str(out), *options]) == 0
            folders[name] = (run, out)
        return folders[name]

    return get
