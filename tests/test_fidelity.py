"""Fidelity to the reference (M3T) settings: the model that ``recipes/base/m3t.yaml`` builds is checked
behaviour by behaviour, numerically, so a later change cannot drift from the reference silently. Each check
also shows the named option that switches snlu's alternative on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snlu.config import load_recipe
from snlu.data.labels import LabelSet
from snlu.data.vocab import CharVocab
from snlu.optim.build import build_optimizer
from snlu.registry import FUSIONS, TASKS

RAW = Path(__file__).parents[1] / "recipes" / "fusion_raw_all.yaml"
SENTENCES = ["北京大学在海淀", "上海市政府", "张三去了广州"]


def build(*overrides: str):
    cfg = load_recipe(RAW, list(overrides))
    labels = LabelSet.from_types({"PER", "LOC", "ORG"})
    return cfg, TASKS.get("spoken_ner").cls(cfg, CharVocab.build(SENTENCES), labels)


@pytest.fixture(scope="module")
def reference():
    return build()


def advances_rng(fn) -> bool:
    """Whether calling ``fn`` draws from the torch CPU generator (every dropout mask does)."""
    before = torch.get_rng_state()
    fn()
    return not torch.equal(before, torch.get_rng_state())


def encoder_input(encoder, frames: int = 120):
    torch.manual_seed(0)
    return torch.randn(2, frames, 40), torch.tensor([frames, frames - 30])


def test_audio_encoder_drops_only_on_residual_branches(reference):
    _, task = reference
    enc = task.audio_encoder.train()
    layer = enc.blocks.layers[0]
    x = torch.randn(2, 30, 256)
    assert not advances_rng(lambda: layer.self_attn(x, x, x, need_weights=False))  # attention probabilities
    assert not advances_rng(lambda: enc.positions(x))  # positional encoding
    assert torch.equal(layer.dropout(x), x)  # inside the feed-forward
    assert advances_rng(lambda: layer.dropout1(x)) and advances_rng(lambda: layer.dropout2(x))  # residuals
    feats, lengths = encoder_input(enc)
    a, b = (enc(feats, lengths)[0] for _ in range(2))
    assert not torch.equal(a, b)  # residual dropout draws new masks each call
    # With the residual dropout off nothing else is random: two training-mode passes are identical.
    _, quiet = build("audio_encoder.dropout=0")
    quiet_enc = quiet.audio_encoder.train()
    assert torch.equal(quiet_enc(feats, lengths)[0], quiet_enc(feats, lengths)[0])
    # snlu's former placement, one override away: attention/feed-forward/position dropout draw masks too.
    _, everywhere = build("audio_encoder.dropout=0", "audio_encoder.attention_dropout=0.1",
                          "audio_encoder.ffn_dropout=0.1", "audio_encoder.pos_dropout=0.1")
    noisy = everywhere.audio_encoder.train()
    assert not torch.equal(noisy(feats, lengths)[0], noisy(feats, lengths)[0])


def test_utterance_norm_is_one_mean_and_std_per_utterance(reference):
    cfg, task = reference
    assert cfg.frontend.norm == "utterance"
    frontend = task.frontend.eval()
    torch.manual_seed(1)
    a, b = torch.randn(80, 40) * 4 + 2, torch.randn(50, 40) * 0.5 - 1
    batch = torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)
    out = frontend(batch, torch.tensor([80, 50]))
    for i, x in enumerate((a, b)):
        std, mean = torch.std_mean(x)  # the reference's statistics: the whole T x F matrix
        torch.testing.assert_close(out[i, : len(x)], (x - mean) / std, atol=1e-5, rtol=1e-5)
    bins = build("frontend.norm=utterance_bins")[1].frontend.eval()(a[None], torch.tensor([80]))[0]
    torch.testing.assert_close(bins.mean(0), torch.zeros(40), atol=1e-5, rtol=0)  # per-bin alternative


def test_fusion_heads_follow_the_text_encoder(reference):
    cfg, task = reference
    assert cfg.fusion.num_heads is None
    block = task.fusion.block
    bert = task.text_encoder.model.config
    assert block.heads == bert.num_attention_heads and block.q.out_features // block.heads == 64

    # the reference's bert-base-chinese (12 heads, 768 wide): a default BertConfig() fusion has 12 heads of 64
    fusion = FUSIONS.build(cfg.fusion, 768, 256, 3072, 12)
    assert fusion.block.heads == 12 and fusion.block.q.out_features // fusion.block.heads == 64
    assert build("fusion.num_heads=4")[1].fusion.block.heads == 4


def test_ctc_sends_no_gradient_into_the_tied_embedding(reference):
    cfg, task = reference
    assert cfg.ctc_head.train_embedding is False
    enc, head = task.audio_encoder.train(), task.ctc_head
    feats, lengths = encoder_input(enc)
    frames, flen = enc(feats, lengths)
    targets = torch.tensor([[3, 4, 5], [4, 5, 0]])
    head.loss(head(frames), flen, targets, torch.tensor([3, 2])).backward()
    assert head.embedding.grad is None and enc.blocks.layers[0].linear1.weight.grad is not None
    trained = build("ctc_head.train_embedding=true")[1]
    frames, flen = trained.audio_encoder(feats, lengths)
    trained.ctc_head.loss(trained.ctc_head(frames), flen, targets, torch.tensor([3, 2])).backward()
    assert trained.ctc_head.embedding.grad is not None and trained.ctc_head.embedding.grad.abs().sum() > 0


def test_parameter_groups_learning_rates_and_eps(reference):
    cfg, task = reference
    opt = build_optimizer(task, cfg.optim)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    head = task.text_head
    assert isinstance(head.dropout, torch.nn.Identity)  # no dropout before the classifier
    linear, crf = group_of[id(head.linear.weight)], group_of[id(head.crf.transitions)]
    assert (linear["name"], linear["lr"]) == ("textual_encoder", 1e-5)  # hidden2tag in BERT's group
    assert (crf["name"], crf["lr"]) == ("textual_crf", 1e-3)
    assert group_of[id(head.linear.bias)]["weight_decay"] == 0.0 and linear["weight_decay"] == 1e-5
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"textual_encoder": 1e-5, "textual_crf": 1e-3, "audio_encoder": 2e-5, "audio_crf": 1e-4,
                   "fusion_layer": 1e-5}
    assert all(g["eps"] == 1e-6 and g["betas"] == (0.9, 0.999) for g in opt.param_groups)
    assert isinstance(opt, torch.optim.AdamW)
    # snlu's former choice, one override away: the classifier with the CRF, after dropout 0.1
    cfg2, task2 = build("text_head.classifier_group=null", "text_head.dropout=0.1")
    groups2 = {id(p): g["name"] for g in build_optimizer(task2, cfg2.optim).param_groups for p in g["params"]}
    assert groups2[id(task2.text_head.linear.weight)] == "textual_crf"


def test_schedule_precision_and_batching_defaults(reference):
    cfg, _ = reference
    assert (cfg.scheduler.name, cfg.scheduler.decay) == ("epoch_decay", 0.05)
    assert cfg.train.amp == "auto" and cfg.train.bucket_size == 64  # fp32 on CPU; bucketing is a speed choice
    from snlu.data.batching import BucketBatchSampler

    lengths = [float(i) for i in range(64)]
    random_batches = BucketBatchSampler(lengths, 8, bucket_size=1, shuffle=True, seed=3).batches()
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in random_batches]
    bucketed = BucketBatchSampler(lengths, 8, bucket_size=64, shuffle=True, seed=3).batches()
    assert sum(spans) > 3 * sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in bucketed)
