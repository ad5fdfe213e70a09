"""``hf_ssl``: wav2vec 2.0, HuBERT, WavLM, data2vec-audio from tiny random folders built here (saved with
``save_pretrained``, loaded back offline). References: the transformers model run directly, its feature
extractor, ``torch.nn.functional.avg_pool1d``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snlu.core.errors import ConfigError
from snlu.registry import AUDIO_ENCODERS
from snlu.testing import check_audio_encoder, random_speech_model

HF_FAMILIES = ["wav2vec2", "wav2vec2-layernorm", "hubert", "wavlm", "data2vec-audio"]
LENGTHS = [8000, 5000, 1200]  # samples: 0.5 s, 0.31 s, 75 ms


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    out = {f: random_speech_model(root / f, f) for f in HF_FAMILIES}
    out["hubert-layernorm"] = random_speech_model(root / "hubert-ln", "hubert", feat_extract_norm="layer",
                                                  do_stable_layer_norm=True)
    out["wavlm-layernorm"] = random_speech_model(root / "wavlm-ln", "wavlm", feat_extract_norm="layer")
    return out


def build(path, **options):
    return AUDIO_ENCODERS.build("hf_ssl", 1, config={"path": str(path), **options})


def batch(lengths=LENGTHS, seed=0):
    """(B, S, 1) zero-padded random samples and their lengths."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), generator=g) * 0.1
    return (x * (torch.arange(x.shape[1])[None] < lens[:, None]))[..., None], lens


def reference(enc, wave, n):
    """The transformers model run alone on one utterance, normalised by its feature extractor: (its hidden
    states, its output)."""
    values = torch.tensor(enc.feature_extractor(wave[:n].numpy(), sampling_rate=16000).input_values[0])[None]
    out = enc.model(values, output_hidden_states=True)
    return out.hidden_states, out.last_hidden_state


def reference_states(enc, wave, n):
    """Hidden states 0..L as the encoder numbers them: the last is the model's output."""
    hidden, last = reference(enc, wave, n)
    return [*hidden[:-1], last]


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_each_family_loads_offline_at_25_frames_per_second(family, folders):
    enc = build(folders[family]).eval()
    x, lens = batch()
    with torch.no_grad():
        y, n = enc(x, lens)
        for b, length in enumerate(LENGTHS):
            model_frames = reference_states(enc, x[b, :, 0], length)[-1].shape[1]  # what the model itself gives
            assert n[b].item() == -(-model_frames // 2) == enc.num_frames(length)
    assert y.shape == (3, n.max().item(), 256) and enc.dim == 256
    assert enc.num_frames(16000) == 25  # one second: 49 model frames, pooled in twos
    assert enc.min_samples() == 400 and enc.num_frames(399) == 0  # the feature encoder's receptive field


@pytest.mark.parametrize("family", ["wav2vec2", "wav2vec2-layernorm"])
@pytest.mark.parametrize("layer", ["0", "1", "2", "last"])
def test_one_layer_is_that_hidden_state_pooled_and_projected(family, layer, folders):
    """Layer N is hidden state N; the last (2 here) is the model's output, after the stable-layer-norm models'
    final LayerNorm; mean pooling equals avg_pool1d with a partial last window."""
    enc = build(folders[family], layer=layer).eval()
    x, lens = batch()
    with torch.no_grad():
        y, n = enc(x, lens)
        for b, length in enumerate(LENGTHS):
            hidden, last = reference(enc, x[b, :, 0], length)
            h = (last if layer in ("2", "last") else hidden[int(layer)])[0]  # (T, D)
            pooled = F.avg_pool1d(h.T[None], 2, 2, ceil_mode=True)[0].T  # (T', D)
            torch.testing.assert_close(y[b, : n[b]], enc.proj(pooled), atol=2e-5, rtol=1e-4)
            if family == "wav2vec2-layernorm":  # what transformers 5 numbers hidden state 2 lacks the final norm
                assert not torch.allclose(hidden[2], last, atol=1e-3)


def test_weighted_sum_is_a_softmax_over_every_hidden_state(folders, snlu_log):
    enc = build(folders["hubert"], layer="weighted", dropout=0.0)
    assert enc.model.config.layerdrop == 0.0  # the folder's config says 0.1: skipped layers would shift the states
    assert any("layerdrop set from 0.1 to 0" in r.getMessage() for r in snlu_log.records)
    assert enc.layer_weights.shape == (3,) and enc.cached_dim == 3 * 32
    with torch.no_grad():
        enc.layer_weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    enc.eval()
    x, lens = batch()
    with torch.no_grad():
        y, n = enc(x, lens)
        w = torch.softmax(torch.tensor([0.3, -1.0, 2.0]), 0)
        for b, length in enumerate(LENGTHS):
            states = reference_states(enc, x[b, :, 0], length)
            mixed = sum(w[i] * states[i][0] for i in range(3))
            pooled = F.avg_pool1d(mixed.T[None], 2, 2, ceil_mode=True)[0].T
            torch.testing.assert_close(y[b, : n[b]], enc.proj(pooled), atol=2e-5, rtol=1e-4)
    enc.train()
    y, n = enc(x, lens)
    y.sum().backward()
    assert enc.layer_weights.grad is not None and enc.layer_weights.grad.abs().sum() > 0


def test_last_layer_keeps_the_models_layerdrop(folders):
    assert build(folders["hubert"]).model.config.layerdrop == 0.1


@pytest.mark.parametrize("family", ["wav2vec2-layernorm", "hubert-layernorm", "wavlm-layernorm"])
def test_layer_norm_family_is_exact_in_padded_batches(family, folders):
    """Run batched with the attention mask (one forward for the batch), each utterance gets what it gets alone;
    the contract check also covers shapes, lengths and gradients."""
    assert build(folders[family]).batched
    check_audio_encoder("hf_ssl", {"path": str(folders[family]), "layer": "weighted"}, in_feats=1, lengths=LENGTHS,
                        invalid=[{"layer": "middle"}, {"freeze": "some"}, {"pool": "max"}])


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm", "data2vec-audio"])
def test_group_norm_and_data2vec_run_one_utterance_at_a_time(family, folders, snlu_log):
    """Their padded batches change real frames (by ~1 here): exact_batches (default) runs each alone, exactly;
    exact_batches=false runs the batch at once, differs, and warns at build time."""
    exact = build(folders[family])
    assert not exact.batched
    check_audio_encoder("hf_ssl", {"path": str(folders[family])}, in_feats=1, lengths=LENGTHS)
    fast = build(folders[family], exact_batches=False).eval()
    assert fast.batched and any("depend on the batch" in r.getMessage() for r in snlu_log.records)
    fast.load_state_dict(exact.state_dict())
    x, lens = batch()
    with torch.no_grad():
        y, n = fast(x, lens)
        alone, _ = fast(x[2:, : LENGTHS[2]], lens[2:])
    assert (y[2, : n[2]] - alone[0]).abs().max() > 1e-2


def test_normalisation_is_the_feature_extractors_on_each_utterance_alone(folders):
    """(The extractor of a group-norm model, which returns no attention mask, would normalise a padded batch over
    its padding too: the normalisation of each utterance alone is the one that does not depend on the batch.)"""
    enc = build(folders["wav2vec2"])
    x, lens = batch()
    x = x[..., 0] * 3 + 0.2 * (torch.arange(x.shape[1])[None] < lens[:, None])
    out = enc.normalized(x, lens)
    for b, n in enumerate(LENGTHS):
        alone = enc.feature_extractor(x[b, :n].numpy(), sampling_rate=16000, return_tensors="pt").input_values[0]
        torch.testing.assert_close(out[b, :n], alone, atol=1e-5, rtol=1e-4)
        assert not out[b, n:].any()


def test_freeze_feature_encoder_all_and_none(folders):
    x, lens = batch()
    enc = build(folders["hubert"])  # default: feature_encoder (HubertModel has no freeze_feature_encoder())
    conv = list(enc.model.feature_extractor.parameters())
    assert conv and not any(p.requires_grad for p in conv)
    enc.train()(x, lens)[0].sum().backward()
    assert all(p.grad is None for p in conv)
    assert all(p.grad is not None for p in enc.model.encoder.parameters() if p.requires_grad)

    frozen = build(folders["hubert"], freeze="all", dropout=0.0).train()
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {"proj.weight", "proj.bias"}
    assert not frozen.model.training  # frozen: eval mode even while the task trains (no dropout)
    torch.testing.assert_close(frozen(x, lens)[0], frozen(x, lens)[0])

    none = build(folders["hubert"], freeze="none")
    assert all(p.requires_grad for p in none.model.parameters())


def test_unfreeze_after_steps_trains_all_but_the_feature_encoder_from_then(folders, snlu_log):
    enc = build(folders["wav2vec2"], freeze="all", unfreeze_after_steps=2).train()
    x, lens = batch()
    layer = enc.model.encoder.layers[0].attention.q_proj.weight
    assert layer.requires_grad  # in the optimiser from the start
    for step in range(3):
        enc.zero_grad()
        enc(x, lens)[0].sum().backward()
        assert (layer.grad is not None) == (step == 2), step
        assert enc.model.training == (step >= 1)  # the model goes to train mode when the second batch ends
    assert all(p.grad is None for p in enc.model.feature_extractor.parameters())
    assert int(enc.state_dict()["trained_batches"]) == 3  # saved with the model: a resumed run continues the count
    assert any("unfrozen after 2 training batches" in r.getMessage() for r in snlu_log.records)


def test_mask_time_prob_masks_in_training_only(folders):
    enc = build(folders["wav2vec2"], mask_time_prob=0.5, freeze="none")
    assert enc.model.config.mask_time_prob == 0.5 and enc.model.config.mask_feature_prob == 0.0
    assert build(folders["wav2vec2"]).model.config.apply_spec_augment is False  # the default for NER: off
    x, lens = batch()
    enc.model.config.hidden_dropout = 0.0
    for m in enc.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    enc.eval()
    with torch.no_grad():
        clean = enc(x, lens)[0]
        torch.manual_seed(0)
        enc.train()
        masked = enc(x, lens)[0]
    assert not torch.allclose(clean, masked, atol=1e-3)


def test_downsample_options(folders):
    x, lens = batch()
    model_frames = build(folders["wav2vec2"], downsample=1).num_frames(8000)
    assert model_frames == 24  # 49.5 frames/s kept
    four = build(folders["wav2vec2"], downsample=4)
    assert four.num_frames(8000) == 6
    concat = build(folders["wav2vec2"], pool="concat", layer="1").eval()
    assert concat.proj.in_features == 2 * 32
    with torch.no_grad():
        y, n = concat(x, lens)
        h = reference_states(concat, x[1, :, 0], LENGTHS[1])[1][0]  # (15, D): the odd last frame pairs with zeros
        stacked = torch.cat([h, h.new_zeros(1, h.shape[1])]).reshape(-1, 2 * h.shape[1])
        torch.testing.assert_close(y[1, : n[1]], concat.proj(stacked), atol=2e-5, rtol=1e-4)


def test_activation_checkpointing_gives_the_same_gradients(folders):
    x, lens = batch()
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same projection
        enc = build(folders["wav2vec2-layernorm"], checkpointing=checkpointing).train()
        assert enc.model.is_activation_checkpointing == checkpointing
        torch.manual_seed(1)  # the same dropout and layerdrop draws (recomputed ones replay them)
        enc(x, lens)[0].sum().backward()
        grads.append(enc.model.encoder.layers[0].feed_forward.output_dense.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_backbone_group_moves_the_pretrained_weights(folders):
    enc = build(folders["wav2vec2"], backbone_group="ssl")
    moved = enc.group_overrides()["ssl"]
    assert {id(p) for p in moved} == {id(p) for p in enc.model.parameters() if p.requires_grad}
    cfg = AUDIO_ENCODERS.config("hf_ssl", path=str(folders["wav2vec2"]), backbone_group="ssl")
    assert type(enc).optimizer_groups(cfg, "audio_encoder") == ["audio_encoder", "ssl"]
    frozen = AUDIO_ENCODERS.config("hf_ssl", path=str(folders["wav2vec2"]), backbone_group="ssl", freeze="all")
    assert type(enc).optimizer_groups(frozen, "audio_encoder") == ["audio_encoder"]  # nothing of it trains


def test_bad_options_are_one_line_errors_naming_the_key(folders, tmp_path):
    path = str(folders["wav2vec2"])
    cases = [
        ({"path": str(tmp_path / "nowhere")}, "audio_encoder.path: not a local model folder"),
        ({"path": str(random_speech_model(tmp_path / "w", "whisper"))}, "holds a 'whisper' model"),
        ({"path": path, "layer": "middle"}, "audio_encoder.layer: expected last, weighted"),
        ({"path": path, "freeze": "feature_encoder", "unfreeze_after_steps": 5}, "only with freeze: all"),
        ({"path": path, "freeze": "all", "mask_time_prob": 0.05}, "audio_encoder.mask_time_prob"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            AUDIO_ENCODERS.config("hf_ssl", **options)
    (tmp_path / "w" / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="no weights in"):
        AUDIO_ENCODERS.config("whisper_encoder", path=str(tmp_path / "w"))
    with pytest.raises(ConfigError, match="audio_encoder.layer: 3 is past the model's hidden states 0..2"):
        build(path, layer="3")
    with pytest.raises(ConfigError, match="set frontend.name=waveform"):
        AUDIO_ENCODERS.build("hf_ssl", 40, config={"path": path})


def test_a_text_model_folder_is_refused():
    from snlu.encoders.bert import demo_bert_dir

    with pytest.raises(ConfigError, match="holds a 'bert' model; this encoder loads wav2vec2, hubert, wavlm"):
        AUDIO_ENCODERS.config("hf_ssl", path=str(demo_bert_dir()))


def test_saved_section_folder_rebuilds_from_config_alone(folders, tmp_path):
    enc = build(folders["wavlm"], layer="weighted").eval()
    enc.save_files(tmp_path / "audio_encoder")
    assert not (tmp_path / "audio_encoder" / "model.safetensors").exists()  # the weights live in the model's file
    again = build(tmp_path / "audio_encoder", layer="weighted").eval()
    again.load_state_dict(enc.state_dict())
    x, lens = batch()
    with torch.no_grad():
        torch.testing.assert_close(again(x, lens)[0], enc(x, lens)[0])


def test_snlu_list_shows_the_encoders_and_the_frontend(capsys):
    from snlu.cli.list import main

    assert main(["audio_encoders"]) == 0 and main(["audio_frontends"]) == 0
    out = capsys.readouterr().out
    for name in ("hf_ssl ", "whisper_encoder ", "waveform "):
        assert f"\n  {name}" in out


def test_a_ctc_fine_tuned_checkpoint_loads_without_its_output_layer(tmp_path):
    """A ``Wav2Vec2ForCTC`` folder (weights under ``wav2vec2.``, plus ``lm_head``): the encoder is the same."""
    import transformers

    folder = random_speech_model(tmp_path / "base", "wav2vec2")
    ctc = transformers.Wav2Vec2ForCTC.from_pretrained(str(folder), vocab_size=12)
    ctc.save_pretrained(str(tmp_path / "ctc"))
    transformers.Wav2Vec2FeatureExtractor.from_pretrained(str(folder)).save_pretrained(str(tmp_path / "ctc"))
    a, b = build(folder).model, build(tmp_path / "ctc").model
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_an_utterance_too_short_for_the_model_is_a_data_error(folders):
    from snlu.core.errors import DataError
    from snlu.data.processor import AudioFeatures
    from snlu.data.utterance import Utterance
    from snlu.registry import AUDIO_FRONTENDS

    audio = AudioFeatures(AUDIO_FRONTENDS.build("waveform"), build(folders["hubert"]))
    utt = Utterance("u", "中文", None, 0.02, [], [], {}, "dev.jsonl:3", wave=np.zeros(399, dtype=np.float32))
    with pytest.raises(DataError, match="dev.jsonl:3.*399 samples: too short for the encoder"):
        audio.prepare(utt)
    assert audio.prepare(dataclasses.replace(utt, wave=np.zeros(400, dtype=np.float32))).shape == (400, 1)
