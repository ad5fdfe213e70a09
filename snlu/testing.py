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


def check_fusion(component: str | type, options: dict[str, Any] | None = None, invalid: Iterable[dict] = (),
                 text_dim: int = 32, audio_dim: int = 16, intermediate_size: int = 64, seed: int = 0) -> None:
    """A fusion: built as ``cls(cfg, text_dim, audio_dim, intermediate_size)``; ``uses_tokens`` (bool) says
    whether it reads the audio tokens. ``forward(text, text_mask, frames, frame_mask, tokens)`` gets text
    (B, N, Dt), text_mask (B, N) bool True on real pieces, frames (B, T, Da), frame_mask (B, T), tokens
    (B, N, Da) (None when ``uses_tokens`` is False) and returns (B, N, Dt)."""
    with _seeded(seed):
        fusion, what = _build(FUSIONS, component, options, invalid, text_dim, audio_dim, intermediate_size)
        uses_tokens = getattr(fusion, "uses_tokens", None)
        if not isinstance(uses_tokens, bool):
            _fail(what, "needs a boolean class attribute 'uses_tokens'")
        n, t, lens_n, lens_t = 7, 20, [7, 4], [20, 11]
        text, frames, tokens = torch.randn(2, n, text_dim), torch.randn(2, t, audio_dim), torch.randn(2, n, audio_dim)
        tmask, fmask = _lengths_mask(lens_n, n), _lengths_mask(lens_t, t)
        text[1, 4:], tokens[1, 4:], frames[1, 11:] = GARBAGE, GARBAGE, GARBAGE
        fusion.eval()
        with torch.no_grad():
            out = fusion(text, tmask, frames, fmask, tokens)
            _shape(out, (2, n, text_dim), what, "forward's output")
            _finite(out[tmask], what, "the output at real positions")
            for b in range(2):
                alone = fusion(text[b:b + 1, :lens_n[b]], tmask[b:b + 1, :lens_n[b]], frames[b:b + 1, :lens_t[b]],
                               fmask[b:b + 1, :lens_t[b]], tokens[b:b + 1, :lens_n[b]])
                _same(out[b, :lens_n[b]], alone[0], what, f"utterance {b} gives another output in a padded batch "
                      "than alone: padding (text, frames or tokens) leaks into real positions")
            if not uses_tokens:
                try:
                    without = fusion(text, tmask, frames, fmask, None)
                except Exception as e:
                    raise ContractError(f"{what}: uses_tokens is False but forward fails with tokens=None (the "
                                        f"task passes None then): {type(e).__name__}: {e}") from None
                _same(out, without, what, "uses_tokens is False but the output changes when tokens=None")
        fusion.train()
        for x in (text, frames, tokens):
            x.requires_grad_(True)
        out = fusion(text, tmask, frames, fmask, tokens if uses_tokens else None)
        (out * tmask[..., None]).sum().backward()
        _gradients(fusion, what)
        _uses(text.grad, what, "the text")
        _uses(tokens.grad if uses_tokens else frames.grad, what, "the audio tokens" if uses_tokens else "the frames")
        if frames.grad is not None and frames.grad[1, 11:].abs().sum() > 0:
            _fail(what, "padded frames get a gradient: they take part in the output")


# ----------------------------------------------------------------------------- audio tokenizers


def check_audio_tokenizer(component: str | type, options: dict[str, Any] | None = None,
                          invalid: Iterable[dict] = (), dim: int = 8, vocab_size: int = 7, seed: int = 0) -> None:
    """An audio tokenizer: built as ``cls(cfg)``. ``forward(frames, frame_lengths, ctc_logits, char_ids,
    char_lengths)`` gets frames (B, T, d), frame_lengths (B,), the CTC logits (B, T, V), the transcript's
    character ids (B, C) (blank = 0 never occurs in them) and char_lengths (B,), and returns one vector per
    character, (B, C, d). Padded characters may get any finite vector (the task masks them)."""
    with _seeded(seed):
        tok, what = _build(AUDIO_TOKENIZERS, component, options, invalid)
        t, lens_t, lens_c = 30, [30, 18], [5, 2]
        frames = torch.randn(2, t, dim)
        logits = torch.randn(2, t, vocab_size) * 3
        chars = torch.tensor([[1, 2, 3, 3, 4], [5, 6, 4, 4, 4]])  # row 1: padded with a real character id
        frame_lengths, char_lengths = torch.tensor(lens_t), torch.tensor(lens_c)
        frames[1, 18:], logits[1, 18:] = GARBAGE, GARBAGE
        tok.eval()
        with torch.no_grad():
            out = tok(frames, frame_lengths, logits, chars, char_lengths)
            _shape(out, (2, 5, dim), what, "forward's output")
            _finite(out, what, "the output")
            for b in range(2):
                alone = tok(frames[b:b + 1, :lens_t[b]], frame_lengths[b:b + 1], logits[b:b + 1, :lens_t[b]],
                            chars[b:b + 1, :lens_c[b]], char_lengths[b:b + 1])
                _same(out[b, :lens_c[b]], alone[0], what, f"utterance {b} gives another output in a padded batch "
                      "than alone: padding (frames, logits or characters) leaks into real characters")
        tok.train()
        frames.requires_grad_(True)
        out = tok(frames, frame_lengths, logits, chars, char_lengths)
        (out * _lengths_mask(lens_c, 5)[..., None]).sum().backward()
        _gradients(tok, what)
        _uses(frames.grad, what, "the frames")
        if frames.grad[1, 18:].abs().sum() > 0:
            _fail(what, "padded frames get a gradient: they take part in the output")


# ----------------------------------------------------------------------------- audio encoders


def check_audio_encoder(component: str | type, options: dict[str, Any] | None = None,
                        invalid: Iterable[dict] = (), in_feats: int = 40, seed: int = 0) -> None:
    """An audio encoder: built as ``cls(cfg, in_feats)`` with an attribute ``dim`` (output size).
    ``forward(feats, lengths)`` gets features (B, T, F) (padding is zero after the frontend) and lengths (B,)
    and returns (frames (B, T', dim), frame_lengths (B,) long, 0 < T'_b <= T')."""
    with _seeded(seed):
        enc, what = _build(AUDIO_ENCODERS, component, options, invalid, in_feats)
        dim = getattr(enc, "dim", None)
        if not isinstance(dim, int) or dim <= 0:
            _fail(what, "needs an attribute 'dim' (int > 0): the size of its output vectors")
        t, lens = 120, [120, 77, 31]
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
