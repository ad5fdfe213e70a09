"""The Conv2d subsampling front: its channels-last matmul formulation gives the outputs and the gradients of
the plain ``nn.Conv2d`` stack (NCHW, ``nn.Sequential``, transpose, Linear), keeps the state-dict keys and the
output-lengths rule.

Gradients are compared in float64: in float32 any two formulations round differently, and a pre-activation
within ~1e-7 of zero then lands on the other side of a ReLU, which changes a gradient by a whole term (the
plain module itself differs from a float64 computation that way on large batches)."""

from __future__ import annotations

import warnings

import pytest
import torch

from snlu.core.frames import subsampled_lengths
from snlu.encoders.subsampling import Conv2dSubsampling

SHAPES = [  # (batch, frames, mel bins, lengths): odd and even sizes, the shortest input, padding
    (1, 7, 40, [7]),
    (2, 8, 40, [8, 7]),
    (3, 101, 40, [101, 64, 9]),
    (2, 64, 80, [64, 33]),
    (4, 37, 23, [37, 36, 20, 11]),
]


def plain(module: Conv2dSubsampling, feats: torch.Tensor) -> torch.Tensor:
    """The straightforward computation: the module's own nn.Conv2d/ReLU stack in NCHW, then the Linear."""
    x = module.conv(feats.unsqueeze(1))  # (B, C, T', F')
    b, c, t, f = x.shape
    return module.out(x.transpose(1, 2).reshape(b, t, c * f))


def batch(b: int, t: int, f: int, lengths: list[int], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.randn(b, t, f, dtype=dtype)
    for i, n in enumerate(lengths):
        feats[i, n:] = 0.0  # padding, as the collate writes it
    return feats, torch.tensor(lengths)


def outputs_and_grads(fn, module, feats, weights):
    """fn's output and the gradients of <output, weights> w.r.t. every parameter and the input."""
    feats = feats.clone().requires_grad_(True)
    out = fn(module, feats)
    grads = torch.autograd.grad((out * weights).sum(), [*module.parameters(), feats])
    return out, grads


@pytest.mark.parametrize(("b", "t", "f", "lengths"), SHAPES)
def test_outputs_and_gradients_equal_the_plain_module_in_float64(b, t, f, lengths):
    torch.manual_seed(t * f)
    module = Conv2dSubsampling(f, 48, channels=32).double()
    feats, lens = batch(b, t, f, lengths, torch.float64)
    weights = torch.randn(b, subsampled_lengths(torch.tensor(t)).item(), 48, dtype=torch.float64)
    ref, ref_grads = outputs_and_grads(plain, module, feats, weights)
    out, grads = outputs_and_grads(lambda m, x: m(x, lens)[0], module, feats, weights)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    names = [n for n, _ in module.named_parameters()] + ["input"]
    for name, g, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-11, atol=1e-11, msg=lambda m, n=name: f"gradient of {n}: {m}")


@pytest.mark.parametrize(("b", "t", "f", "lengths"), SHAPES[1:4])
def test_float32_outputs_and_gradients_match_at_full_width(b, t, f, lengths):
    torch.manual_seed(t + f)
    module = Conv2dSubsampling(f, 256)  # the real 256 channels: oneDNN's channels-last kernels
    feats, lens = batch(b, t, f, lengths, torch.float32)
    weights = torch.randn(b, subsampled_lengths(torch.tensor(t)).item(), 256)
    ref, ref_grads = outputs_and_grads(plain, module, feats, weights)
    out, grads = outputs_and_grads(lambda m, x: m(x, lens)[0], module, feats, weights)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4 * r.abs().max().item())


def test_without_onednn_the_layout_falls_back_and_results_stay_exact():
    """With oneDNN off the convolution may return NCHW: the reshape then copies, the numbers are the same."""
    torch.manual_seed(0)
    module = Conv2dSubsampling(40, 16, channels=8).double()
    feats, lens = batch(2, 30, 40, [30, 21], torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a note about Intel GPUs, from setting the flags
        with torch.backends.mkldnn.flags(enabled=False):
            out = module(feats, lens)[0]
    torch.testing.assert_close(out, plain(module, feats), rtol=1e-12, atol=1e-12)


def test_output_lengths_rule_and_padding_invariance():
    torch.manual_seed(3)
    module = Conv2dSubsampling(40, 16, channels=8).double()
    feats, lens = batch(3, 57, 40, [57, 30, 7], torch.float64)
    out, out_lens = module(feats, lens)
    assert out.shape == (3, 13, 16)
    assert out_lens.tolist() == [((n - 1) // 2 - 1) // 2 for n in lens.tolist()] == [13, 6, 1]
    for i, n in enumerate(lens.tolist()):  # real frames do not see the padding
        alone, _ = module(feats[i : i + 1, :n], lens[i : i + 1])
        torch.testing.assert_close(out[i, : out_lens[i]], alone[0], rtol=1e-12, atol=1e-12)


def test_state_dict_keys_and_shapes_are_those_of_saved_models():
    module = Conv2dSubsampling(80, 256)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {
        "conv.0.weight": (256, 1, 3, 3), "conv.0.bias": (256,),
        "conv.2.weight": (256, 256, 3, 3), "conv.2.bias": (256,),
        "out.weight": (256, 256 * 19), "out.bias": (256,),
    }
    other = Conv2dSubsampling(80, 256)
    other.load_state_dict(module.state_dict())  # strict: a checkpoint of the plain module loads
    feats = torch.randn(1, 20, 80)
    torch.testing.assert_close(other(feats, torch.tensor([20]))[0], plain(module, feats), rtol=1e-5, atol=1e-5)


def test_bf16_autocast_on_cpu_runs_and_stays_close():
    torch.manual_seed(5)
    module = Conv2dSubsampling(40, 64, channels=32)
    feats, lens = batch(2, 50, 40, [50, 41], torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(feats, lens)[0]
    assert out.dtype == torch.bfloat16
    ref = plain(module, feats)
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
