"""Batched CTC Viterbi forced alignment and the token/frame alignment mask.

The ``dpmask`` audio tokenizer needs, for every utterance in a batch, which frames the best CTC path
assigns to which target token. ``torchaudio.functional.forced_align`` only handles one utterance at a
time, so this module runs the same Viterbi recursion vectorised over batch and states (one Python loop
over time steps), on whatever device the inputs live on.

Topology: the standard CTC extended label sequence ``(blank, y1, blank, y2, ..., yL, blank)`` of
``S = 2L + 1`` states. A path starts in state 0 or 1, moves ``s -> s``, ``s -> s + 1`` or
``s -> s + 2`` (the last only onto a non-blank label that differs from the label two states back) and
ends in state ``2L`` or ``2L - 1``. Ties are broken as torchaudio does: prefer staying (offset 0), then
offset 1, then offset 2; at the end prefer state ``2L - 1`` unless ``2L`` is strictly better.

One deliberate difference: torchaudio (2.11 here) picks offset 1 only if ``x1 > x0 and x1 > x2``, so an exact
tie ``x1 == x2 > x0`` falls through to the strictly worse ``x0`` and yields a sub-optimal path
(pytorch/audio#4221). Here offset 1 wins whenever ``x1 > x0`` (and ``x2`` is not strictly best), which is
always a true maximum. The two agree except on such exact ties (measure zero for float logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from snlu.core.tensors import lengths_mask

__all__ = ["alignment_mask", "ctc_forced_align"]


@torch.no_grad()
def ctc_forced_align(
    log_probs: Tensor,
    input_lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    blank: int = 0,
) -> tuple[Tensor, Tensor]:
    """Viterbi-align padded CTC targets to padded frame log-probabilities, batched.

    Args:
        log_probs: ``(B, T, V)`` log-probabilities (log-softmax output); any float dtype, computed in at
            least float32.
        input_lengths: ``(B,)`` number of valid frames per row (``<= T``).
        targets: ``(B, L)`` target label ids, padded with any value beyond ``target_lengths``; valid
            entries must lie in ``[0, V)`` and differ from ``blank``.
        target_lengths: ``(B,)`` number of valid target tokens per row (``<= L``).
        blank: id of the CTC blank label.

    Returns:
        ``(token_index, feasible)``: ``token_index`` ``(B, T)`` long, the index ``j`` in ``[0, L_b)`` of
        the target token the best path assigns frame ``t`` to, or ``-1`` for blank frames, padding frames
        (``t >= input_lengths[b]``) and infeasible rows; ``feasible`` ``(B,)`` bool, ``False`` where no
        valid alignment exists (``T_b < L_b + repeats_b``, or every path has probability zero).
    """
    if log_probs.dim() != 3 or targets.dim() != 2:
        raise ValueError(
            f"expected log_probs (B, T, V) and targets (B, L), got {tuple(log_probs.shape)} "
            f"and {tuple(targets.shape)}"
        )
    B, T, V = log_probs.shape
    L = targets.size(1)
    S = 2 * L + 1
    device = log_probs.device
    input_lengths = input_lengths.to(device=device, dtype=torch.long).clamp(max=T)  # (B,)
    target_lengths = target_lengths.to(device=device, dtype=torch.long)  # (B,)
    targets = targets.to(device=device, dtype=torch.long)  # (B, L)
    if T == 0:
        return torch.full((B, 0), -1, dtype=torch.long, device=device), target_lengths == 0

    # Valid targets; padding replaced by blank so every gather index is in range.
    valid = lengths_mask(target_lengths, L)  # (B, L)
    bad = valid & ((targets < 0) | (targets >= V) | (targets == blank))
    if bool(bad.any()):
        raise ValueError(f"targets must lie in [0, {V}) and differ from blank={blank}")
    labels = torch.where(valid, targets, blank)  # (B, L)
    repeats = ((labels[:, 1:] == labels[:, :-1]) & valid[:, 1:]).sum(1)  # (B,)

    # Extended label sequence and its emissions, gathered before the float upcast (V may be large).
    ext = torch.full((B, S), blank, dtype=torch.long, device=device)  # (B, S)
    ext[:, 1::2] = labels
    dtype = torch.promote_types(log_probs.dtype, torch.float32)
    emit = log_probs.gather(2, ext[:, None, :].expand(B, T, S)).to(dtype)  # (B, T, S)
    emit = emit.transpose(0, 1).contiguous()  # (T, B, S)
    # s -> s + 2 is allowed onto a non-blank state whose label differs from the one two states back.
    can_skip = torch.zeros(B, S, dtype=torch.bool, device=device)  # (B, S)
    can_skip[:, 3::2] = labels[:, 1:] != labels[:, :-1]

    neg_inf = torch.tensor(float("-inf"), dtype=dtype, device=device)
    skip_penalty = torch.where(can_skip, 0.0, neg_inf)  # (B, S): 0 where s - 2 -> s is allowed, else -inf
    frame_active = lengths_mask(input_lengths, T).t()[..., None]  # (T, B, 1)
    alpha = torch.full((B, S), float("-inf"), dtype=dtype, device=device)  # (B, S)
    alpha[:, :2] = emit[0, :, :2]
    backptr = torch.zeros(T, B, S, dtype=torch.uint8, device=device)  # (T, B, S): offsets 0/1/2
    for t in range(1, T):
        shifted = F.pad(alpha, (2, 0), value=float("-inf"))  # (B, S + 2): shifted[:, s + 2] = alpha[:, s]
        x0 = alpha  # (B, S), from s
        x1 = shifted[:, 1 : S + 1]  # (B, S), from s - 1
        x2 = shifted[:, :S] + skip_penalty  # (B, S), from s - 2
        best01 = torch.maximum(x0, x1)
        take1 = x1 > x0  # ties prefer staying
        take2 = x2 > best01  # ties prefer the shorter move
        best = torch.maximum(best01, x2)  # (B, S)
        alpha = torch.where(frame_active[t], best + emit[t], alpha)  # frozen past each row's length
        backptr[t] = take1.to(torch.uint8).masked_fill_(take2, 2)
    # Offset 0 on frames past a row's length freezes the backtracked state at that row's final state.
    backptr.masked_fill_(~frame_active, 0)

    # Final state: 2L_b (trailing blank) only if strictly better than 2L_b - 1 (last token).
    last = (2 * target_lengths)[:, None]  # (B, 1)
    score_blank = alpha.gather(1, last).squeeze(1)  # (B,)
    score_token = torch.where(
        target_lengths > 0, alpha.gather(1, (last - 1).clamp(min=0)).squeeze(1), neg_inf
    )  # (B,)
    state = torch.where(score_blank > score_token, last.squeeze(1), last.squeeze(1) - 1).clamp(min=0)  # (B,)
    score = torch.maximum(score_blank, score_token)  # (B,)
    feasible = (input_lengths >= target_lengths + repeats) & (
        (score > float("-inf")) | (input_lengths == 0)
    )  # (B,)

    # Batched backtracking.
    path = torch.empty(T, B, dtype=torch.long, device=device)  # (T, B)
    for t in range(T - 1, -1, -1):
        path[t] = state
        if t > 0:
            state = state - backptr[t].gather(1, state[:, None]).squeeze(1).long()
    path = path.t()  # (B, T)

    frame_valid = lengths_mask(input_lengths, T)  # (B, T)
    keep = (path % 2 == 1) & frame_valid & feasible[:, None]  # (B, T)
    token_index = torch.where(keep, (path - 1) // 2, -1)  # (B, T)
    return token_index, feasible


def alignment_mask(token_index: Tensor, num_tokens: int) -> Tensor:
    """``(B, L, T)`` bool mask, True where frame ``t`` is aligned to token ``j`` (``L = num_tokens``)."""
    tokens = torch.arange(num_tokens, device=token_index.device)  # (L,)
    return token_index.unsqueeze(1) == tokens[None, :, None]  # (B, L, T)
