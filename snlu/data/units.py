"""Output units of the CTC tasks (``asr``, ``e2e_ner``) and of the auxiliary CTC (``ctc_head.aux``), registered in
``UNITS``: characters (``char``), SentencePiece pieces (``sentencepiece``), Mandarin syllables (``pinyin``,
snlu/data/pinyin.py), one interface.

Every kind maps text to ids with ``<blank>`` = 0 (CTC's blank, never produced by ``encode``) and ``<pad>`` = 1,
decodes ids back to text (blank, padding and unknown units dropped), and is saved beside the weights:
``vocab.json`` for characters, ``units.model`` (the SentencePiece model itself) for pieces, ``pinyin.json``.

SentencePiece models are trained from the training transcripts on first use, in memory, deterministically:
``character_coverage`` 1.0 (every Chinese character of the transcripts is a unit), the ``identity``
normalisation with whitespace kept (decoding gives back the exact text), no dummy prefix, and the
``user_defined_symbols`` given (the entity markers of ``e2e_ner``) always single pieces. SentencePiece id k
is unit k + 2: ids 0 and 1 stay free for blank and padding; its ``<unk>`` (id 0 when trained here) is unit 2,
as in :class:`~snlu.data.vocab.CharVocab`.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from snlu.core.checks import positive
from snlu.core.errors import ConfigError
from snlu.data.pinyin import PinyinUnits
from snlu.data.vocab import BLANK, PAD, CharVocab, Units
from snlu.registry import UNITS

log = logging.getLogger("snlu")
SP_TYPES = ("unigram", "bpe")
SEED = 0  # SentencePiece's random generator (seed pieces, sampling): fixed, so every rank trains the same model


@dataclasses.dataclass
class UnitsConfig:
    """Task options of the CTC output units.

    ``units``: a name of ``UNITS`` (``char``: one unit per character; ``sentencepiece``; ``pinyin``: Mandarin
    syllables); ``sp_type``: ``unigram`` or ``bpe``; ``sp_vocab_size``: the pieces wanted (an upper bound on a
    small corpus; with Chinese it must exceed the number of distinct characters); ``sp_model``: an existing
    ``.model`` file to use instead of training one; ``pinyin_tones``: tonal syllables (``hang2``) or toneless.
    """

    units: str = "char"
    sp_type: str = "unigram"
    sp_vocab_size: int = 5000
    sp_model: str | None = None
    pinyin_tones: bool = True

    def __post_init__(self) -> None:
        check_units_name(self.units)
        if self.sp_type not in SP_TYPES:
            raise ValueError(f"sp_type: expected one of {', '.join(SP_TYPES)}, got '{self.sp_type}'")
        positive(self, "sp_vocab_size")
        if self.sp_model and self.units != "sentencepiece":
            raise ValueError(f"sp_model: set only with units: sentencepiece (units is '{self.units}')")


def check_units_name(name: str) -> None:
    """ValueError (``units: ...``) unless ``name`` is registered in ``UNITS``."""
    if name not in UNITS:
        raise ValueError(f"units: expected one of {', '.join(UNITS.names())}, got '{name}'")


class SentencePieceUnits(Units):
    """SentencePiece pieces (unigram or BPE) trained on the training transcripts, or a given model (sp_model).

    ``<blank>`` = 0, ``<pad>`` = 1, SentencePiece id k = unit k + 2."""

    kind: ClassVar[str] = "sentencepiece"
    file: ClassVar[str] = "units.model"
    offset: ClassVar[int] = 2
    pad_id = 1
    spells_text: ClassVar[bool] = True

    def __init__(self, proto: bytes):
        import sentencepiece as spm

        self.proto = bytes(proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.proto)  # RuntimeError when not a model
        n = self.sp.get_piece_size()
        pieces = [self.sp.id_to_piece(i) for i in range(n)]
        clash = sorted({BLANK, PAD} & set(pieces))
        if clash:
            raise ValueError(f"the model has its own {', '.join(clash)} pieces (ids 0, 1 are CTC blank and padding)")
        self.pieces = pieces
        self.stoi = {BLANK: 0, PAD: 1, **{p: i + self.offset for i, p in enumerate(pieces)}}
        self._silent = {i + self.offset for i in range(n) if self.sp.is_unknown(i) or self.sp.is_control(i)}

    @classmethod
    def train(cls, sentences: Iterable[str], sp_type: str = "unigram", vocab_size: int = 5000,
              symbols: Sequence[str] = ()) -> SentencePieceUnits:
        """Train a model on ``sentences`` (in memory); ``symbols`` become pieces of their own, never split or merged."""
        import sentencepiece as spm

        sentences = [s for s in sentences if s.strip()]
        if not sentences:
            raise ConfigError("task.units: no training transcripts to train a SentencePiece model on")
        out = io.BytesIO()
        spm.set_random_generator_seed(SEED)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=out,
                model_type=sp_type, vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
                user_defined_symbols=list(symbols), unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
                num_threads=1, minloglevel=2)
        except RuntimeError as e:
            too_small = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(e))
            if too_small:
                raise ConfigError(f"task.sp_vocab_size: {too_small[1]} is below the {too_small[2]} distinct characters "
                                  f"and symbols of the training transcripts (all are kept): raise it") from None
            raise ConfigError(f"task.units: SentencePiece training failed: {_explain(str(e))}") from None
        return cls(out.getvalue())

    @staticmethod
    def spell(text: str) -> list[str]:
        """The units an error rate counts: the characters (a piece error is several character errors)."""
        return list(text)

    @staticmethod
    def split(decoded: str) -> list[str]:
        return list(decoded)

    def encode(self, text: str) -> list[int]:
        return [i + self.offset for i in self.sp.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        n = len(self)
        return self.sp.decode([i - self.offset for i in ids if self.offset <= i < n and i not in self._silent])

    def __len__(self) -> int:
        return len(self.pieces) + self.offset

    def single(self, symbol: str) -> bool:
        """``symbol`` is a piece and no other piece contains it: every text encodes it as one unit of its own."""
        return symbol in self.stoi and not any(symbol in p for p in self.pieces if p != symbol)

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.proto)

    @classmethod
    def load(cls, path: Path) -> SentencePieceUnits:
        return cls(Path(path).read_bytes())

    @classmethod
    def from_texts(cls, options: Any, sentences: Iterable[str], symbols: Sequence[str] = ()) -> SentencePieceUnits:
        """The ``sp_model`` of ``options``, or a model trained on ``sentences`` with its ``sp_*`` options."""
        return sentencepiece_units(options, sentences, symbols)

    def __getstate__(self) -> dict[str, Any]:  # the SentencePiece processor itself does not pickle (spawned workers)
        return {"proto": self.proto}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["proto"])


def _explain(message: str) -> str:
    """The last line of a SentencePiece error, without its source location."""
    return re.sub(r"^.*?\.cc\(\d+\) ", "", message.strip().splitlines()[-1] if message.strip() else "")


UNITS.require(Units)
UNITS.register("char")(CharVocab)
UNITS.register("sentencepiece")(SentencePieceUnits)
UNITS.register("pinyin")(PinyinUnits)


def units_class(kind: str) -> Any:
    """The registered class of units ``kind`` (its ``file``, ``load``, ``from_texts``)."""
    return UNITS.get(kind, key="task.units").cls


def units_file(kind: str) -> str:
    """The file of a model folder that holds its units of ``kind``."""
    return units_class(kind).file


def units_kind(task_cfg: Any) -> str:
    """The ``units`` of a task section (``char`` for tasks without the option and models saved before it)."""
    return str(task_cfg.get("units", "char") or "char")


def load_units(path: Path, kind: str) -> Units:
    """Read a saved vocabulary of ``kind`` (ValueError/OSError/RuntimeError when it is not one)."""
    return units_class(kind).load(path)


def build_units(options: Any, sentences: Iterable[str], symbols: Sequence[str] = ()) -> Units:
    """The units an options section (a task section, ``ctc_head.aux``) names, for these training targets: a
    character vocabulary, the ``sp_model`` given or a SentencePiece model trained on them, pinyin syllables.
    ``symbols`` must come out as single units (else ConfigError)."""
    return units_class(units_kind(options)).from_texts(options, sentences, symbols)


def sentencepiece_units(task_cfg: Any, sentences: Iterable[str], symbols: Sequence[str] = ()) -> SentencePieceUnits:
    """The ``sp_model`` given, or a SentencePiece model trained on ``sentences``."""
    path = task_cfg.get("sp_model")
    if path:
        try:
            units = SentencePieceUnits.load(Path(path))
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"task.sp_model: {path}: not a usable SentencePiece model: {_explain(str(e))}") from None
        log.info("units: SentencePiece model %s (%d units)", path, len(units))
        broken = [s for s in symbols if not units.single(s)]
        if broken:
            raise ConfigError(f"task.sp_model: {path} does not keep {broken!r} as single pieces "
                              f"(train it with them as user_defined_symbols, or set task.sp_model=null)")
        return units
    sentences, sp_type, size = list(sentences), task_cfg.get("sp_type", "unigram"), task_cfg.get("sp_vocab_size", 5000)
    log.info("units: training a SentencePiece %s model of up to %d pieces on %d transcripts", sp_type, size,
             len(sentences))
    units = SentencePieceUnits.train(sentences, sp_type, int(size), symbols)
    log.info("units: %d SentencePiece units (with blank and padding)", len(units))
    return units
