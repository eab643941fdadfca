"""Every communication tag, named once. The communicator counts calls and bytes per tag, records carry
them and the CI gate compares them tag by tag, so a value here never changes without a baseline refresh.

A differentiable all-to-all (``comm.all_to_all_autograd``) books its two directions under TAG + FWD and
TAG + BWD; evaluation passes put EVAL in front of the training tag of the same exchange.
"""
from __future__ import annotations

FWD, BWD = "/fwd", "/bwd"
EVAL = "eval/"  # prefix of every tag an evaluation pass books

SETUP_PARTITION = "setup/partition"  # rank 0's partition sent to every rank (partition, sampling, hybrid pipeline)
SETUP_CHUNK_ORDER = "setup/chunk-order"  # pipeline: the METIS chunk order
GRAD_ALLREDUCE = "grad/allreduce"  # the data-parallel weight-gradient all-reduce
LOSS_ALLREDUCE = "loss/allreduce"  # the loss sum (tensor, partition, sampling)
PIPE_LOSS = "pipe/loss"  # pipeline's loss sum: the same operation as LOSS_ALLREDUCE, under its historical name
STALE_DRIFT = "stale/drift"  # partition --stale K with a drift bound: each rank's drift of a layer's send rows
EVAL_ACC = "eval/acc"  # correct/total counts of the accuracy
EVAL_PARAMS = "eval/params"  # pipeline: stage weights gathered on rank 0
FETCH = "fetch"  # sampling: remote feature rows of a mini-batch
SAMPLE_PARTS = ("sizes", "ids", "counts", "nbrs", "rows")  # the all-to-alls of one sampling/fetch round


def halo(layer: int, prefix: str = "") -> str:
    """Graph partitioning: layer ``layer``'s halo exchange (autograd sends the gradients back under BWD)."""
    return f"{prefix}layer{layer}/halo"


def tp_split(layer: int, prefix: str = "") -> str:
    """Tensor parallelism: vertex -> feature split before layer ``layer``'s aggregation."""
    return f"{prefix}layer{layer}/split"


def tp_gather(layer: int, prefix: str = "") -> str:
    """Tensor parallelism: feature -> vertex gather after layer ``layer``'s aggregation."""
    return f"{prefix}layer{layer}/gather"


def tp_logits(layer: int, prefix: str = "") -> str:
    """Tensor parallelism, gat: the all-reduce of layer ``layer``'s partial attention logits (el, er)."""
    return f"{prefix}layer{layer}/logits"


def prop(step: str, direction: str, prefix: str = "") -> str:
    """Decoupled tensor parallelism: ``step`` 'split' or 'gather' of the propagation, ``direction`` FWD or BWD."""
    return f"{prefix}prop/{step}{direction}"


def pipe_cut(cut: int, direction: str, prefix: str = "") -> str:
    """Pipelining: activations (FWD) or gradients (BWD) across the cut in front of stage ``cut``."""
    return f"{prefix}pipe/cut{cut}{direction}"


def sample(layer: int) -> str:
    """Sampling: layer ``layer``'s distributed neighbour sampling round."""
    return f"sample/layer{layer}"


def part(tag: str, name: str) -> str:
    """One all-to-all (``SAMPLE_PARTS``) of a sampling or fetch round ``tag``."""
    return f"{tag}/{name}"
