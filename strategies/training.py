"""Training pieces every strategy shares: the optimiser, the distributed loss, gradient all-reduce, accuracy.

The loss is the sum of cross-entropy over a rank's training rows divided by the *global* number of
training rows, so summing gradients over ranks gives exactly the full-graph gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import tags
from .comm import Communicator
from .phases import TIMER


def make_params(initial: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Leaf tensors (requires_grad) on ``device`` from an initial state."""
    return {k: v.detach().clone().to(device).requires_grad_(True) for k, v in initial.items()}


def make_optimizer(params: dict[str, Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam over ``params``; its steps are timed as the ``optimizer`` phase."""
    opt = torch.optim.Adam(list(params.values()), lr=lr, weight_decay=weight_decay)
    pushed = [False]

    def pre(*_):
        pushed[0] = TIMER.push("optimizer")

    def post(*_):
        if pushed[0]:
            TIMER.pop()
            pushed[0] = False

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(post)
    return opt


def local_loss(logits: Tensor, label: Tensor, mask: Tensor, global_count: int) -> Tensor:
    """Sum of CE over masked rows / global_count (a rank's share of the global mean)."""
    if mask.any():
        return rows_loss(logits[mask], label[mask], global_count)
    return logits.sum() * 0.0


def rows_loss(logits: Tensor, label: Tensor, global_count: int) -> Tensor:
    """``local_loss`` over logits computed for the masked rows only (``label``: theirs, in the same order)."""
    if logits.shape[0]:
        return F.cross_entropy(logits, label, reduction="sum") / max(global_count, 1)
    return logits.sum() * 0.0


def linear_rows_loss(h: Tensor, w: Tensor, b: Tensor, label: Tensor, global_count: int, block: int = 1 << 16) -> Tensor:
    """``rows_loss((h @ w).add_(b), label, global_count)`` computed ``block`` rows at a time, saving only ``h``
    for backward: neither the logits nor their log-softmax (each [rows, classes]) is made for all rows at
    once nor kept; backward recomputes each block's logits (autograd's own log-softmax and nll gradients per
    block, then ``grad_h`` = grad_logits @ w^T and the weight's and bias's gradients summed block by block).
    Up to ``block`` rows it is ``rows_loss``'s loss and gradients bit for bit; beyond, the blocks' losses are
    summed in float64 and the weight gradients by block (equal up to rounding). For an output layer whose
    weight widens the rows (gcn h16 -> 47 classes) this is most of the loss's memory: on rmat-products P=4,
    367K training rows per rank, 2 x 69 MB in forward and 3 x 69 MB at the backward's peak (P=2: twice)."""
    if h.shape[0] == 0:
        return rows_loss((h @ w).add_(b), label, global_count)
    return _LinearCrossEntropy.apply(h, w, b, label, global_count, block)


def linear_predictions(h: Tensor, w: Tensor, b: Tensor, block: int = 1 << 16) -> Tensor:
    """``((h @ w).add_(b)).argmax(-1)`` computed ``block`` rows at a time: the classes without the [rows,
    classes] logits (evaluation's output layer over every owned row)."""
    pred = torch.empty(h.shape[0], dtype=torch.int64, device=h.device)
    for lo in range(0, h.shape[0], block):
        pred[lo:lo + block] = (h[lo:lo + block] @ w).add_(b).argmax(-1)
    return pred


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, b: Tensor, label: Tensor, global_count: int, block: int) -> Tensor:
        ctx.save_for_backward(h, w, b, label)
        ctx.global_count, ctx.block = global_count, block
        if h.shape[0] <= block:
            return rows_loss((h @ w).add_(b), label, global_count)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for lo in range(0, h.shape[0], block):
            logits = (h[lo:lo + block] @ w).add_(b)
            total += F.cross_entropy(logits, label[lo:lo + block], reduction="sum").to(torch.float64)
        return total.to(h.dtype) / max(global_count, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, w, b, label = ctx.saved_tensors
        g = grad / max(ctx.global_count, 1)  # the division's backward, then cross-entropy's per block
        grad_h, grad_w, grad_b = torch.empty_like(h), torch.zeros_like(w), torch.zeros_like(b)
        for lo in range(0, h.shape[0], ctx.block):
            hb = h[lo:lo + ctx.block]
            lsm = torch.log_softmax((hb @ w).add_(b), 1)
            g_lsm = torch.zeros_like(lsm).scatter_(1, label[lo:lo + ctx.block, None], (-g).expand(hb.shape[0], 1))
            g_logits = torch._log_softmax_backward_data(g_lsm, lsm, 1, lsm.dtype)
            del lsm, g_lsm
            torch.mm(g_logits, w.t(), out=grad_h[lo:lo + ctx.block])
            grad_w.addmm_(hb.t(), g_logits)
            grad_b.add_(g_logits.sum(0))
        return grad_h, grad_w, grad_b, None, None, None


def allreduce_grads(comm: Communicator, params: dict[str, Tensor], tag: str = tags.GRAD_ALLREDUCE) -> None:
    """Sum every parameter's gradient over ranks in one flat all_reduce (the NN phase is data-parallel)."""
    if comm.world_size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params.values()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    comm.all_reduce(flat, tag)
    offset = 0
    for p in params.values():
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def global_sum(comm: Communicator, values: list[float], tag: str) -> list[float]:
    """Sum a few scalars over ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64)
    comm.all_reduce(t, tag)
    return t.tolist()


def accuracy_counts(logits: Tensor | None, label: Tensor, masks: list[Tensor], pred: Tensor | None = None) -> list[float]:
    """[correct, total] per mask, for rows this rank owns (``pred``: the predicted classes, instead of logits)."""
    pred = logits.argmax(-1) if pred is None else pred
    out: list[float] = []
    for m in masks:
        out += [float((pred[m] == label[m]).sum()), float(m.sum())]
    return out


def global_accuracy(comm: Communicator, logits: Tensor | None, label: Tensor, masks: list[Tensor],
                    tag: str = tags.EVAL_ACC, pred: Tensor | None = None) -> dict[str, float]:
    """Train/val/test accuracy over all ranks' owned rows (from ``pred``, the predicted classes, where given)."""
    c = global_sum(comm, accuracy_counts(logits, label, masks, pred), tag)
    names = ("train_acc", "val_acc", "test_acc")
    return {n: c[2 * i] / c[2 * i + 1] if c[2 * i + 1] else float("nan") for i, n in enumerate(names)}
