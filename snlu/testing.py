"""Contract checks for components, for the tests of any plugin (the built-ins' tests use them too).

    from snlu.testing import check_fusion

    def test_contract():
        check_fusion("gated")                 # a registered name, or the class itself

Each check builds the component through its registry, with small sizes, and asserts the contract of its kind:

- registration and config: the class is registered, documented (``snlu-list`` shows its first doc line), and
  its config dataclass goes through recipe validation: ``options`` are accepted, an unknown key is refused
  with its key path, and each mapping in ``invalid`` is refused;
- shapes: what the task feeds it, what the task expects back (listed in each check's docstring);
- masking invariance: garbage in the padding never changes the real positions, and each utterance of a
  padded batch gives what it gives alone;
- gradients: every trainable parameter gets a finite gradient, and the inputs the component claims to use
  get one too.

A broken component fails with a ``ContractError`` (an ``AssertionError``, so pytest shows it as a failure)
naming the rule it broke. ``tiny_overrides`` and ``tiny_demo_corpus`` help a plugin test train its recipe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.errors import ConfigError
from snlu.core.tensors import lengths_mask
from snlu.registry import AUDIO_ENCODERS, AUDIO_TOKENIZERS, FUSIONS, HEADS, Registry
from snlu.tasks.views import FUSION_ARGS, FUSION_DEFAULT, TOKENIZER_ARGS, TOKENIZER_DEFAULT, VIEWS, check_consumes
from snlu.tokenizers.align import ctc_forced_align

GARBAGE = 9.0  # written into padding: a component that reads padding changes its output
TOL = {"atol": 2e-5, "rtol": 1e-4}

# Small model sizes for a recipe trained one epoch in seconds (the recipe's structure is kept).
TINY_OVERRIDES = (
    "audio_encoder.n_blocks=1",
    "audio_encoder.ffn_dim=128",
    "audio_encoder.d_model=64",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
)


class ContractError(AssertionError):
    """A component breaks the contract of its kind."""


def _fail(what: str, rule: str) -> NoReturn:
    raise ContractError(f"{what}: {rule}")


# ----------------------------------------------------------------------------- registration and config


def check_config(registry: Registry, component: str | type, options: dict[str, Any] | None = None,
                 invalid: Iterable[dict[str, Any]] = ()) -> DictConfig:
    """The validated config of ``component`` with ``options``; checks registration, doc and validation."""
    entry = _entry(registry, component)
    what = f"{registry.section} '{entry.name}' ({entry.cls.__qualname__})"
    if not (entry.cls.__doc__ or "").strip():  # its own: inspect.getdoc would inherit nn.Module's
        _fail(what, "no docstring: snlu-list shows the first line of the class docstring")
    options = dict(options or {})
    try:
        cfg = registry.config(entry.name, **options)
    except ConfigError as e:
        raise ContractError(f"{what}: its config refuses {options or 'the defaults'}: {e}") from None
    try:
        registry.config(entry.name, **options, not_an_option_xyz=1)
    except ConfigError as e:
        if f"{registry.section}.not_an_option_xyz" not in str(e):
            _fail(what, f"an unknown key is refused without its key path: {e}")
    else:
        _fail(what, "its config accepts an unknown key")
    for bad in invalid:
        try:
            registry.config(entry.name, **{**options, **bad})
        except ConfigError:
            continue
        _fail(what, f"its config accepts the invalid options {bad}")
    return cfg


def _entry(registry: Registry, component: str | type):
    if isinstance(component, str):
        return registry.get(component)
    for entry in registry:
        if entry.cls is component:
            return entry
    raise ContractError(f"{getattr(component, '__qualname__', component)} is not registered in {registry.kind}: "
                        f"decorate it with @{registry.kind.upper()}.register(NAME, config=...)")


def _build(registry: Registry, component: str | type, options: dict[str, Any] | None,
           invalid: Iterable[dict[str, Any]], *args: Any) -> tuple[nn.Module, str]:
    cfg = check_config(registry, component, options, invalid)
    what = f"{registry.section} '{cfg.name}'"
    module = registry.build(cfg, *args)
    if not isinstance(module, nn.Module):
        _fail(what, f"must be a torch.nn.Module, got {type(module).__name__}")
    return module, what


# ----------------------------------------------------------------------------- helpers


def _same(a: Tensor, b: Tensor, what: str, rule: str) -> None:
    if a.shape != b.shape or not torch.allclose(a.float(), b.float(), **TOL):
        diff = (a.float() - b.float()).abs().max().item() if a.shape == b.shape else f"shapes {a.shape}/{b.shape}"
        _fail(what, f"{rule} (max difference {diff})")


def _shape(x: Any, shape: tuple[int, ...], what: str, name: str) -> None:
    if not torch.is_tensor(x):
        _fail(what, f"{name} must be a tensor, got {type(x).__name__}")
    if tuple(x.shape) != shape:
        _fail(what, f"{name} must have shape {shape}, got {tuple(x.shape)}")


def _finite(x: Tensor, what: str, name: str) -> None:
    if not torch.isfinite(x).all():
        _fail(what, f"{name} is not finite")


def _gradients(module: nn.Module, what: str) -> None:
    for name, p in module.named_parameters():
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all()):
            _fail(what, f"parameter '{name}' gets no finite gradient (unused, or detached from the output)")


def _uses(grad: Tensor | None, what: str, name: str) -> None:
    if grad is None or grad.abs().sum() == 0:
        _fail(what, f"the output does not depend on {name} (no gradient reaches it)")


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _lengths_mask(lengths: Sequence[int], size: int) -> Tensor:
    return lengths_mask(torch.tensor(lengths), size)


# ----------------------------------------------------------------------------- fusions


def _consumes(section: str, component: nn.Module, default: tuple[str, ...], offered: tuple[str, ...],
              what: str) -> tuple[str, ...]:
    try:
        return check_consumes(section, component, default, offered)
    except ConfigError as e:
        raise ContractError(f"{what}: {e}") from None


def _alignment(lengths: Sequence[int], chars: Sequence[int], t: int) -> Tensor:
    """(B, T) long: frame t of utterance b aligned to character t * C_b // T_b, every third frame blank (-1),
    padding -1: what a CTC forced alignment looks like."""
    out = torch.full((len(lengths), t), -1)
    for b, (n, c) in enumerate(zip(lengths, chars)):
        for j in range(n):
            out[b, j] = j * c // n if j % 3 else -1
    return out


def check_fusion(component: str | type, options: dict[str, Any] | None = None, invalid: Iterable[dict] = (),
                 text_dim: int = 32, audio_dim: int = 16, intermediate_size: int = 64, text_heads: int = 4,
                 vocab_size: int = 6, seed: int = 0) -> None:
    """A fusion: built as ``cls(cfg, text_dim, audio_dim, intermediate_size, text_heads)``; its class attribute
    ``consumes`` names what it reads of what the spoken-NER task offers
    (``snlu.tasks.views.VIEWS``). ``forward(text, text_mask, frames, frame_mask, tokens, **others)`` gets text
    (B, N, Dt), text_mask (B, N) bool True on real pieces, frames (B, T, Da), frame_mask (B, T), tokens (B, N, Da)
    (None when it does not consume them), and each other representation it consumes by name: ``ctc_logits`` and
    ``ctc_posteriors`` (B, T, V), ``alignment`` (B, T) long (-1: blank or padding); it returns (B, N, Dt). Every
    float input it consumes must get a gradient, and none in the padding."""
    with _seeded(seed):
        fusion, what = _build(FUSIONS, component, options, invalid, text_dim, audio_dim, intermediate_size,
                              text_heads)
        wants = _consumes("fusion", fusion, FUSION_DEFAULT, tuple(VIEWS), what)
        n, t, lens_n, lens_t = 7, 20, [7, 4], [20, 11]
        text = torch.randn(2, n, text_dim)
        audio = {"frames": torch.randn(2, t, audio_dim), "tokens": torch.randn(2, n, audio_dim),
                 "ctc_logits": torch.randn(2, t, vocab_size) * 3}
        audio["ctc_posteriors"] = audio["ctc_logits"].softmax(-1)
        audio["alignment"] = _alignment(lens_t, [5, 3], t)
        tmask, fmask = _lengths_mask(lens_n, n), _lengths_mask(lens_t, t)
        text[1, 4:], audio["tokens"][1, 4:] = GARBAGE, GARBAGE
        for name in ("frames", "ctc_logits", "ctc_posteriors"):
            audio[name][1, 11:] = GARBAGE

        def run(b: int | None, tokens: bool = True) -> Tensor:
            """The fusion on the batch (``b`` None) or on utterance ``b`` alone."""
            cut = {k: v if b is None else v[b:b + 1, :(lens_n if k == "tokens" else lens_t)[b]]
                   for k, v in audio.items()}
            nb = n if b is None else lens_n[b]
            rows = slice(None) if b is None else slice(b, b + 1)
            others = {k: cut[k] for k in wants if k not in FUSION_ARGS}
            return fusion(text[rows, :nb], tmask[rows, :nb], cut["frames"],
                          fmask[rows, :cut["frames"].shape[1]], cut["tokens"] if tokens else None, **others)

        fusion.eval()
        with torch.no_grad():
            out = run(None)
            _shape(out, (2, n, text_dim), what, "forward's output")
            _finite(out[tmask], what, "the output at real positions")
            for b in range(2):
                _same(out[b, :lens_n[b]], run(b)[0], what, f"utterance {b} gives another output in a padded batch "
                      "than alone: padding (text, frames, tokens or CTC outputs) leaks into real positions")
            if "tokens" not in wants:
                try:
                    without = run(None, tokens=False)
                except Exception as e:
                    raise ContractError(f"{what}: it does not consume 'tokens' (consumes {wants}) but forward fails "
                                        f"with tokens=None (the task passes None then): {type(e).__name__}: {e}"
                                        ) from None
                _same(out, without, what, f"it does not consume 'tokens' (consumes {wants}) but the output changes "
                      "when tokens=None")
        fusion.train()
        floats = [k for k in wants if audio[k].is_floating_point()]
        for x in (text, *(audio[k] for k in floats)):
            x.requires_grad_(True)
        out = run(None, tokens="tokens" in wants)
        (out * tmask[..., None]).sum().backward()
        _gradients(fusion, what)
        _uses(text.grad, what, "the text")
        for k in floats:
            _uses(audio[k].grad, what, f"the {k.replace('_', ' ')} it consumes")
            if k != "tokens" and audio[k].grad[1, 11:].abs().sum() > 0:
                _fail(what, f"padded frames of {k} get a gradient: they take part in the output")


# ----------------------------------------------------------------------------- audio tokenizers


def check_audio_tokenizer(component: str | type, options: dict[str, Any] | None = None,
                          invalid: Iterable[dict] = (), dim: int = 8, vocab_size: int = 7, seed: int = 0) -> None:
    """An audio tokenizer: built as ``cls(cfg)``; ``consumes`` names what it reads (default: frames and CTC
    logits). ``forward(frames, frame_lengths, ctc_logits, char_ids, char_lengths, **others)`` gets frames
    (B, T, d), frame_lengths (B,), the CTC logits (B, T, V) (None when it does not consume them), the transcript's
    character ids (B, C) (blank = 0 never occurs in them), char_lengths (B,), and ``ctc_posteriors`` (B, T, V) or
    the CTC forced ``alignment`` (B, T) by name when it consumes them; it returns one vector per character,
    (B, C, d). Padded characters may get any finite vector (the task masks them)."""
    with _seeded(seed):
        tok, what = _build(AUDIO_TOKENIZERS, component, options, invalid)
        offered = tuple(v for v in VIEWS if v != "tokens")
        wants = _consumes("audio_tokenizer", tok, TOKENIZER_DEFAULT, offered, what)
        t, lens_t, lens_c = 30, [30, 18], [5, 2]
        frames = torch.randn(2, t, dim)
        logits = torch.randn(2, t, vocab_size) * 3
        chars = torch.tensor([[1, 2, 3, 3, 4], [5, 6, 4, 4, 4]])  # row 1: padded with a real character id
        frame_lengths, char_lengths = torch.tensor(lens_t), torch.tensor(lens_c)
        frames[1, 18:], logits[1, 18:] = GARBAGE, GARBAGE
        extra = {"ctc_posteriors": logits.softmax(-1),
                 "alignment": ctc_forced_align(logits.log_softmax(-1), frame_lengths, chars, char_lengths)[0]}

        def run(b: int | None) -> Tensor:
            rows = slice(None) if b is None else slice(b, b + 1)
            nt, nc = (t, 5) if b is None else (lens_t[b], lens_c[b])
            others = {k: extra[k][rows, :nt] for k in wants if k not in TOKENIZER_ARGS}
            return tok(frames[rows, :nt], frame_lengths[rows], logits[rows, :nt] if "ctc_logits" in wants else None,
                       chars[rows, :nc], char_lengths[rows], **others)

        tok.eval()
        with torch.no_grad():
            out = run(None)
            _shape(out, (2, 5, dim), what, "forward's output")
            _finite(out, what, "the output")
            for b in range(2):
                _same(out[b, :lens_c[b]], run(b)[0], what, f"utterance {b} gives another output in a padded batch "
                      "than alone: padding (frames, CTC outputs or characters) leaks into real characters")
        tok.train()
        frames.requires_grad_(True)
        out = run(None)
        (out * _lengths_mask(lens_c, 5)[..., None]).sum().backward()
        _gradients(tok, what)
        _uses(frames.grad, what, "the frames")
        if frames.grad[1, 18:].abs().sum() > 0:
            _fail(what, "padded frames get a gradient: they take part in the output")


# ----------------------------------------------------------------------------- audio encoders


def check_audio_encoder(component: str | type, options: dict[str, Any] | None = None,
                        invalid: Iterable[dict] = (), in_feats: int = 40, seed: int = 0,
                        lengths: Sequence[int] = (120, 77, 31)) -> None:
    """An audio encoder: built as ``cls(cfg, in_feats)`` with an attribute ``dim`` (output size).
    ``forward(feats, lengths)`` gets features (B, T, F) (padding is zero after the frontend) and lengths (B,)
    and returns (frames (B, T', dim), frame_lengths (B,) long, 0 < T'_b <= T'). ``lengths``: three decreasing
    input lengths (in samples for an encoder of the waveform, ``in_feats=1``). An encoder that offers the
    auxiliary CTC its blocks (``encode_with_block(feats, lengths, block)``, for ``ctc_head.aux``) returns
    ``forward``'s outputs exactly, and block 1's output (B, T', dim)."""
    with _seeded(seed):
        enc, what = _build(AUDIO_ENCODERS, component, options, invalid, in_feats)
        dim = getattr(enc, "dim", None)
        if not isinstance(dim, int) or dim <= 0:
            _fail(what, "needs an attribute 'dim' (int > 0): the size of its output vectors")
        lens = list(lengths)
        t = lens[0]
        feats = torch.randn(3, t, in_feats) * _lengths_mask(lens, t)[..., None]  # zero padding, as the frontend's
        lengths = torch.tensor(lens)
        enc.eval()
        with torch.no_grad():
            out = enc(feats, lengths)
            if not (isinstance(out, tuple) and len(out) == 2):
                _fail(what, "forward must return (frames, frame_lengths)")
            frames, out_lengths = out
            if not torch.is_tensor(frames) or frames.dim() != 3 or frames.shape[0] != 3 or frames.shape[2] != dim:
                _fail(what, f"frames must have shape (3, T', dim={dim}), got {tuple(getattr(frames, 'shape', ()))}")
            _shape(out_lengths, (3,), what, "frame_lengths")
            if out_lengths.dtype != torch.long or not ((out_lengths > 0) & (out_lengths <= frames.shape[1])).all():
                _fail(what, f"frame_lengths must be long with 0 < length <= T'={frames.shape[1]}, got "
                      f"{out_lengths.tolist()}")
            if not out_lengths[0] >= out_lengths[1] >= out_lengths[2]:
                _fail(what, f"frame_lengths must grow with the input lengths {lens}, got {out_lengths.tolist()}")
            _finite(frames[_lengths_mask(out_lengths.tolist(), frames.shape[1])], what, "the real frames")
            for b, n in enumerate(lens):
                alone, alone_len = enc(feats[b:b + 1, :n], lengths[b:b + 1])
                if alone_len.tolist() != out_lengths[b:b + 1].tolist():
                    _fail(what, f"utterance {b} gets {alone_len.tolist()} frames alone, {out_lengths[b].item()} in "
                          "a padded batch")
                _same(frames[b, :alone_len.item()], alone[0], what, f"utterance {b} gives other frames in a padded "
                      "batch than alone: padding leaks into real frames")
            if hasattr(enc, "encode_with_block"):
                tapped, tapped_lengths, inner = enc.encode_with_block(feats, lengths, 1)
                if not (torch.equal(tapped, frames) and torch.equal(tapped_lengths, out_lengths)):
                    _fail(what, "encode_with_block must return forward's frames and frame_lengths")
                _shape(inner, tuple(frames.shape), what, "encode_with_block's block output")
        enc.train()
        feats.requires_grad_(True)
        frames, out_lengths = enc(feats, lengths)
        (frames * _lengths_mask(out_lengths.tolist(), frames.shape[1])[..., None]).sum().backward()
        _gradients(enc, what)
        _uses(feats.grad, what, "the features")


# ----------------------------------------------------------------------------- heads


def check_head(component: str | type, options: dict[str, Any] | None = None, invalid: Iterable[dict] = (),
               kind: str | None = None, in_dim: int = 12, size: int = 5, seed: int = 0) -> None:
    """A head, built as ``cls(cfg, in_dim, size)``. Two kinds (default: ``ctc`` if the class has a ``blank``):

    - ``tagger`` (size = tags): ``loss(x (B, N, d), tags (B, N), mask (B, N)) -> scalar``, the mean over the
      batch; ``decode(x, mask) -> list`` of tag-id lists, one per utterance, of length ``mask[b].sum()``;
    - ``ctc`` (size = vocabulary, blank = 0): ``forward(frames (B, T, d)) -> logits (B, T, V)``;
      ``loss(logits, lengths (B,), targets (B, L), target_lengths (B,)) -> scalar``, the mean over the batch,
      finite even for an utterance with fewer frames than targets.
    """
    with _seeded(seed):
        head, what = _build(HEADS, component, options, invalid, in_dim, size)
        kind = kind or ("ctc" if hasattr(head, "blank") else "tagger")
        if kind == "tagger":
            _check_tagger(head, what, in_dim, size)
        elif kind == "ctc":
            _check_ctc(head, what, in_dim, size)
        else:
            raise ValueError(f"kind: expected tagger or ctc, got '{kind}'")


def _check_tagger(head: nn.Module, what: str, in_dim: int, tags: int) -> None:
    n, lens = 6, [6, 3]
    x = torch.randn(2, n, in_dim)
    y = torch.randint(0, tags, (2, n))
    mask = _lengths_mask(lens, n)
    x[1, 3:], y[1, 3:] = GARBAGE, tags - 1
    head.eval()
    with torch.no_grad():
        loss = head.loss(x, y, mask)
        _shape(loss, (), what, "loss")
        _finite(loss, what, "loss")
        alone = [head.loss(x[b:b + 1, :m], y[b:b + 1, :m], mask[b:b + 1, :m]) for b, m in enumerate(lens)]
        _same(loss, sum(alone) / 2, what, "the loss of a padded batch is not the mean of each utterance's loss alone")
        paths = head.decode(x, mask)
        if not isinstance(paths, list) or [len(p) for p in paths] != lens:
            _fail(what, f"decode must return one tag list per utterance, of lengths {lens}")
        for b, m in enumerate(lens):
            if list(paths[b]) != list(head.decode(x[b:b + 1, :m], mask[b:b + 1, :m])[0]):
                _fail(what, f"utterance {b} decodes differently in a padded batch than alone")
        if not all(0 <= int(i) < tags for p in paths for i in p):
            _fail(what, f"decode returns tag ids outside [0, {tags})")
    head.train()
    x.requires_grad_(True)
    head.loss(x, y, mask).backward()
    _gradients(head, what)
    _uses(x.grad, what, "the input vectors")


def _check_ctc(head: nn.Module, what: str, in_dim: int, vocab: int) -> None:
    t, lens = 10, [10, 7, 3]
    frames = torch.randn(3, t, in_dim)
    frames[1, 7:], frames[2, 3:] = GARBAGE, GARBAGE
    targets = torch.tensor([[1, 2, 3, 4], [2, 2, 4, 1], [1, 2, 3, 4]])  # row 2: 3 frames for 4 targets
    target_lengths, lengths = torch.tensor([3, 2, 4]), torch.tensor(lens)
    head.eval()
    with torch.no_grad():
        logits = head(frames)
        _shape(logits, (3, t, vocab), what, "forward's logits")
        loss = head.loss(logits, lengths, targets, target_lengths)
        _shape(loss, (), what, "loss")
        _finite(loss, what, "loss (with an utterance shorter than its targets)")
        alone = [head.loss(head(frames[b:b + 1, :m]), lengths[b:b + 1], targets[b:b + 1, :target_lengths[b]],
                           target_lengths[b:b + 1]) for b, m in enumerate(lens)]
        _same(loss, sum(alone) / 3, what, "the loss of a padded batch is not the mean of each utterance's loss alone")
    head.train()
    frames.requires_grad_(True)
    head.loss(head(frames), lengths, targets, target_lengths).backward()
    _gradients(head, what)
    _uses(frames.grad, what, "the frames")
    _finite(frames.grad, what, "the frames' gradient")


# ----------------------------------------------------------------------------- training a recipe in a test


def tiny_demo_corpus(out: str | Path, n_train: int = 8, n_dev: int = 4, n_test: int = 4, seed: int = 1) -> list[str]:
    """Build a tiny demo corpus in ``out``; the ``data.*`` overrides that point a recipe at it."""
    from snlu.data.demo import build_demo_corpus

    d = build_demo_corpus(out, n_train=n_train, n_dev=n_dev, n_test=n_test, seed=seed, progress=False)
    return [f"data.train={d}/train.jsonl", f"data.dev={d}/dev.jsonl", f"data.test={d}/test.jsonl",
            f"data.audio_dir={d}/wav"]


def tiny_overrides() -> list[str]:
    """Overrides for a tiny model trained one epoch, one batch of 4 at a time, no worker processes."""
    return list(TINY_OVERRIDES)


# ----------------------------------------------------------------------------- pretrained speech models

SSL_FAMILIES = ("wav2vec2", "wav2vec2-layernorm", "hubert", "wavlm", "data2vec-audio", "whisper")
_TINY_SSL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
_TINY_WHISPER = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 1, "encoder_attention_heads": 2,
                 "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_mel_bins": 80,
                 "max_source_positions": 100, "max_target_positions": 32, "vocab_size": 100, "pad_token_id": 0,
                 "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1}


def random_speech_model(out: str | Path, family: str, seed: int = 0, **config: Any) -> Path:
    """A randomly initialised speech model of ``family`` (``SSL_FAMILIES``) saved into ``out`` with its feature
    extractor, as a downloaded one would be: tiny by default (hidden 32, 2 layers; Whisper's window 2 s, 100
    frames), any config key overridable (``hidden_size=768``...). No download: the configs are built here."""
    import transformers

    out = Path(out)
    with _seeded(seed):
        if family == "whisper":
            cfg = transformers.WhisperConfig(**{**_TINY_WHISPER, **config})
            model = transformers.WhisperModel(cfg)
            window_s = cfg.max_source_positions * 2 * 160 // 16000  # the extractor pads to this many seconds
            extractor = transformers.WhisperFeatureExtractor(feature_size=cfg.num_mel_bins, chunk_length=window_s)
        else:
            options = {**_TINY_SSL, **config}
            if family == "wav2vec2-layernorm":
                options = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, **options}
            if family == "data2vec-audio":
                options.pop("num_conv_pos_embedding_groups")
                options = {"conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5, **options}
            kind = family.split("-layernorm")[0]
            cfg = transformers.AutoConfig.for_model(kind, **options)
            model = transformers.AutoModel.from_config(cfg)
            layer = getattr(cfg, "feat_extract_norm", "layer") == "layer"
            extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=layer)
    model.save_pretrained(str(out))
    extractor.save_pretrained(str(out))
    return out
