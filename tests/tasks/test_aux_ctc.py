"""The auxiliary (intermediate) CTC of ``ctc_head.aux``: unset, nothing changes (no parameter, the same loss);
set, the loss is ``(1 - w) * main + w * aux`` with the aux CTC read from block ``block`` (checked against a forward
hook on that block and the targets spelt by pypinyin), in ``asr``, ``e2e_ner`` and ``spoken_ner``; its units are
saved beside the weights and the model reloads; bad settings fail at recipe load with their key; ``asr`` with
``task.units: pinyin`` scores syllables and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pypinyin import Style, lazy_pinyin

from snlu.cli.train import main
from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.pinyin import PinyinUnits
from snlu.registry import TASKS
from snlu.tasks.base import Task

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["audio_encoder.n_blocks=3", "audio_encoder.d_model=32", "audio_encoder.ffn_dim=64", "frontend.num_mel_bins=20",
         "train.num_workers=0"]


def build(recipe: str, overrides: list[str], demo_dir: Path, seed: int = 0):
    cfg = load_recipe(RECIPES / recipe, overrides)
    utts = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))[:4]
    torch.manual_seed(seed)
    task = TASKS.get(cfg.task.name).cls.from_data(cfg, utts)
    return task, task.processor.collate([task.processor.prepare(u) for u in utts]), utts


def block_output(task, batch, block: int) -> torch.Tensor:
    """Block ``block``'s output by a forward hook, through the final LayerNorm of pre-norm blocks."""
    seen = {}
    hook = task.audio_encoder.blocks.layers[block - 1].register_forward_hook(lambda m, a, out: seen.update(x=out))
    try:
        task.audio_encoder(task.frontend(batch["feats"], batch["feat_lengths"]), batch["feat_lengths"])
    finally:
        hook.remove()
    norm = task.audio_encoder.blocks.norm
    return norm(seen["x"]) if norm is not None else seen["x"]


def test_unset_changes_nothing_and_weight_zero_is_the_main_loss(demo_dir, demo_overrides):
    plain, batch, _ = build("asr_pretrain.yaml", [*SMALL, *demo_overrides], demo_dir)
    assert plain.aux_units is None and "aux_ids" not in batch and not hasattr(plain.ctc_head, "aux")
    assert [k for k in plain.state_dict() if k.startswith("ctc_head.")] == ["ctc_head.embedding"]
    zero, zbatch, _ = build("asr_pretrain.yaml", [*SMALL, *demo_overrides, "ctc_head.aux={weight: 0.0}"], demo_dir)
    own = zero.state_dict()  # the aux head is built last: every other tensor is initialised as without it
    assert all(torch.equal(v, own[k]) for k, v in plain.state_dict().items())
    plain.train()
    zero.train()
    torch.manual_seed(3)
    a, terms_a = plain.training_step(batch)
    torch.manual_seed(3)  # the same dropout and SpecAugment draws
    b, terms_b = zero.training_step(zbatch)
    assert torch.equal(a, b) and terms_a["ctc"] == terms_b["ctc"] and set(terms_b) == {"ctc", "ctc_aux"}


@pytest.mark.parametrize("norm_first", [False, True])
def test_asr_loss_mixes_the_aux_ctc_of_its_block(demo_dir, demo_overrides, norm_first):
    task, batch, utts = build("asr_pretrain.yaml", [*SMALL, *demo_overrides, f"audio_encoder.norm_first={norm_first}",
                                                    "ctc_head.aux={units: pinyin, block: 2, weight: 0.25}",
                                                    "audio_encoder.dropout=0", "frontend.specaug.enabled=false"],
                              demo_dir)
    units = task.aux_units
    assert isinstance(units, PinyinUnits) and units.tones
    targets = [[units.stoi[s] for s in lazy_pinyin(u.sentence, style=Style.TONE3, neutral_tone_with_five=True)]
               for u in utts]
    assert [row[:n].tolist() for row, n in zip(batch["aux_ids"], batch["aux_lengths"])] == targets
    task.train()
    loss, terms = task.training_step(batch)
    logits, lengths = task(batch)
    main_ref = F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), batch["char_ids"], lengths, batch["char_lengths"],
                          zero_infinity=True)
    aux_logits = block_output(task, batch, 2) @ task.ctc_head.aux.embedding.t()
    aux_ref = F.ctc_loss(aux_logits.log_softmax(-1).transpose(0, 1), batch["aux_ids"], lengths, batch["aux_lengths"],
                         zero_infinity=True)
    torch.testing.assert_close(loss, 0.75 * main_ref + 0.25 * aux_ref)
    assert terms["ctc"] == pytest.approx(main_ref.item(), rel=1e-5)
    assert terms["ctc_aux"] == pytest.approx(aux_ref.item(), rel=1e-5)


def test_the_aux_ctc_alone_trains_the_blocks_up_to_its_own(demo_dir, demo_overrides):
    task, batch, _ = build("asr_pretrain.yaml", [*SMALL, *demo_overrides, "ctc_head.aux={block: 2, weight: 1.0}"],
                           demo_dir)
    task.train()
    loss, _ = task.training_step(batch)
    loss.backward()
    grads = {n: p.grad for n, p in task.named_parameters()}
    assert grads["ctc_head.aux.embedding"].abs().sum() > 0
    assert all(grads[n].abs().sum() > 0 for n in grads if n.startswith("audio_encoder.blocks.layers.1."))
    above = [n for n in grads if n.startswith("audio_encoder.blocks.layers.2.")]
    assert above and all(grads[n] is None or not grads[n].any() for n in above)  # block 3 is past the aux CTC
    assert grads["ctc_head.embedding"] is None or not grads["ctc_head.embedding"].any()


def test_spoken_ner_mixes_the_aux_ctc_into_its_ctc_term(demo_dir, demo_overrides):
    task, batch, _ = build("fusion_raw_all.yaml", [*SMALL, *demo_overrides, "ctc_head.aux={block: 1, weight: 0.4}",
                                                   "audio_encoder.dropout=0", "frontend.specaug.enabled=false",
                                                   "fusion.dropout=0", "audio_head.dropout=0"], demo_dir)
    assert task.cfg.ctc_head.train_embedding is False and task.ctc_head.aux.embedding.requires_grad
    assert "ctc_head.aux.embedding" in {n for n, _ in task.named_parameters()}
    groups = task.param_groups(task.cfg.optim.groups)
    assert any(p is task.ctc_head.aux.embedding for p in groups["audio_encoder"])
    task.train()
    torch.manual_seed(0)
    loss, terms = task.training_step(batch)
    expected = terms["text_crf"] + 0.1 * terms["audio_crf"] + 0.05 * (0.6 * terms["ctc"] + 0.4 * terms["ctc_aux"])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_e2e_ner_with_aux_saves_its_units_and_reloads(tmp_path, tiny, demo_overrides, demo_dir):
    run = tmp_path / "run"
    assert main([str(RECIPES / "e2e_ner.yaml"), *tiny, *demo_overrides, "audio_encoder.n_blocks=2",
                 "ctc_head.aux={units: pinyin, pinyin_tones: false, block: 1}", "--output-dir", str(run)]) == 0
    assert "ctc_aux" in (run / "train.log").read_text()
    saved = json.loads((run / "best" / "aux_pinyin.json").read_text(encoding="utf-8"))
    assert saved["tones"] is False and "bei" in saved["stoi"]
    task = Task.load(run)
    assert task.aux_units.stoi == saved["stoi"] and task.ctc_head.aux.embedding.shape[0] == len(saved["stoi"])
    lines = [json.loads(x) for x in (run / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    from snlu.inference import predict_utterances

    test = read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))
    assert [p[0] for p in predict_utterances(task, test, 4, "cpu", progress=False)] == [x["prediction"] for x in lines]


@pytest.mark.parametrize("recipe, override, message", [
    ("asr_pretrain.yaml", "ctc_head.aux={block: 4}", r"ctc_head.aux.block: 4 is beyond the encoder's 3 blocks"),
    ("asr_pretrain.yaml", "ctc_head.aux={units: pinyn}", r"ctc_head.aux.units: expected one of char, pinyin"),
    ("asr_pretrain.yaml", "ctc_head.aux={weight: 1.5}", r"ctc_head.aux.weight: must be in \[0.0, 1.0\]"),
    ("asr_pretrain.yaml", "task.units=pinyn", r"task.units: expected one of char, pinyin, sentencepiece"),
    ("e2e_ner.yaml", "task.units=pinyin", r"task.units: pinyin: e2e_ner reads its entities from the decoded text"),
])
def test_bad_settings_fail_at_recipe_load(recipe, override, message, demo_overrides):
    with pytest.raises(ConfigError, match=message):
        load_recipe(RECIPES / recipe, [*SMALL, *demo_overrides, override])


def test_asr_with_pinyin_units_scores_syllables(demo_dir, demo_overrides):
    task, batch, utts = build("asr_pretrain.yaml", [*SMALL, *demo_overrides, "task.units=pinyin"], demo_dir)
    assert isinstance(task.vocab, PinyinUnits) and batch["char_ids"].shape[1] == max(len(u.sentence) for u in utts)
    refs = [lazy_pinyin(u.sentence, style=Style.TONE3, neutral_tone_with_five=True) for u in utts]
    hyps = [" ".join(r[1:]) for r in refs[:2]] + [" ".join(r) for r in refs[2:]]  # one deletion in each of two
    metrics = task.evaluate(utts, hyps)
    assert metrics["errors"] == 2 and metrics["chars"] == sum(map(len, refs))
    assert metrics["cer"] == pytest.approx(2 / sum(map(len, refs)))
    assert metrics["cer_of"] == "tonal pinyin syllables (task.units: pinyin)"
