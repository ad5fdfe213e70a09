"""Waveform augmentations: speed perturbation scales length and frequency by its factor and keeps the content
(the same sine, played faster); noise is added at the SNR drawn (measured back), with its probability; draws are
a function of the generator only."""

from __future__ import annotations

import numpy as np
import pytest

from snlu.augment.chain import build_chain
from snlu.augment.noise import Noise, NoiseConfig
from snlu.augment.speed import Speed, SpeedConfig, ratio
from snlu.config import check_component
from snlu.core.errors import ConfigError
from snlu.registry import AUGMENTATIONS

SR = 16000


def sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray) -> float:
    """The strongest frequency, to 0.1 Hz (zero-padded FFT)."""
    n = 10 * SR
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n))
    return float(np.argmax(spectrum) * SR / n)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean, noisy = clean.astype(np.float64), noisy.astype(np.float64)
    return float(10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2)))


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_scales_length_and_frequency_and_keeps_the_content(factor):
    wave = sine(440.0)
    out = Speed(SpeedConfig(factors=[factor])).apply(wave, factor)
    assert abs(len(out) - len(wave) / factor) <= 1
    assert peak_hz(out) == pytest.approx(440.0 * factor, abs=0.3)
    # the content: the same sine played `factor` times faster, sample for sample (away from the filter's edges)
    expected = sine(440.0 * factor, seconds=len(out) / SR)[: len(out)]
    middle = slice(200, len(out) - 200)
    assert np.max(np.abs(out[middle] - expected[middle])) < 5e-3


def test_speed_one_is_the_identity_and_draws_each_factor():
    speed = Speed(SpeedConfig(factors=[0.9, 1.0, 1.1]))
    wave = sine(300.0, 0.2)
    assert speed.apply(wave, 1.0) is wave
    rng = np.random.default_rng(0)
    drawn = [speed.draw(rng) for _ in range(600)]
    assert {f: drawn.count(f) for f in (0.9, 1.0, 1.1)} == pytest.approx({0.9: 200, 1.0: 200, 1.1: 200}, abs=45)
    assert ratio(1.1) == (11, 10) and ratio(0.9) == (9, 10) and ratio(0.95) == (19, 20)


def test_noise_is_added_at_the_drawn_snr():
    noise = Noise(NoiseConfig(snr_min=0.0, snr_max=30.0, prob=1.0))
    wave = sine(200.0, 2.0, amplitude=0.3)
    for seed in range(5):
        expected = noise.draw(np.random.default_rng(seed))  # the same first draws as the call below makes
        out = noise(wave, np.random.default_rng(seed))
        assert 0.0 <= expected <= 30.0 and out.dtype == np.float32 and len(out) == len(wave)
        assert snr_db(wave, out) == pytest.approx(expected, abs=0.15)


def test_noise_probability_and_clipping():
    noise = Noise(NoiseConfig(snr_min=20.0, snr_max=20.0, prob=0.3))
    hits = sum(noise.draw(np.random.default_rng(s)) is not None for s in range(2000))
    assert abs(hits / 2000 - 0.3) < 0.04  # binomial std 0.01
    wave = sine(200.0, 0.5)
    quiet = next(s for s in range(99) if noise.draw(np.random.default_rng(s)) is None)
    assert noise(wave, np.random.default_rng(quiet)) is wave  # no noise drawn: the samples are untouched
    loud = sine(200.0, 1.0, amplitude=0.99)
    out = Noise.apply(loud, 0.0, np.random.default_rng(1))  # 0 dB on a near-full-scale sine would clip
    assert np.max(np.abs(out)) <= 1.0
    scale = float(np.dot(out, loud) / np.dot(loud, loud))  # scaled down as a whole: the ratio is kept
    assert 0.2 < scale < 1.0 and snr_db(loud, out / scale) == pytest.approx(0.0, abs=0.2)


def test_chain_is_a_function_of_the_generator():
    chain = build_chain([AUGMENTATIONS.config("speed"), AUGMENTATIONS.config("noise", prob=1.0)])
    wave = sine(250.0, 0.5)
    a, b = chain(wave, np.random.default_rng([1, 2, 3])), chain(wave, np.random.default_rng([1, 2, 3]))
    assert np.array_equal(a, b)
    others = [chain(wave, np.random.default_rng([1, 3, i])) for i in range(4)]
    assert any(not np.array_equal(a, o) for o in others)
    assert build_chain([]) is None and build_chain(None) is None
    assert repr(chain) == "speed(factors 0.9/1/1.1), noise(p 1, SNR 10-30 dB)"


@pytest.mark.parametrize("item, message", [
    ({"name": "speed", "factors": []}, r"augment\[0\].factors: expected at least one factor"),
    ({"name": "speed", "factors": [3.0]}, r"augment\[0\].factors: each must be in \[0.5, 2.0\], got 3.0"),
    ({"name": "noise", "snr_min": 30, "snr_max": 10}, r"augment\[0\].snr_max: must be >= snr_min=30"),
    ({"name": "noise", "probability": 0.5}, r"augment\[0\].probability: unknown key; did you mean prob\?"),
])
def test_bad_options_name_their_key(item, message):
    with pytest.raises(ConfigError, match=message):
        check_component(AUGMENTATIONS, item, "augment[0]")
