"""The communicator counts exactly the bytes each collective moves, on real gloo processes."""
import torch

from graphpar.bench.runtime.spmd import run_spmd
from graphpar.strategies.comm import all_to_all_autograd


def _exercise(comm):
    r, p = comm.rank, comm.world_size
    # all_to_all: rank r sends (d + 1) rows of width 3 to rank d.
    send = [d + 1 for d in range(p)]
    recv = [r + 1] * p
    x = torch.full((sum(send), 3), float(r))
    y = comm.all_to_all(x, send, recv, tag="a2a")
    # differentiable version: backward sends the same volume back
    xg = torch.ones(sum(send), 5, requires_grad=True)
    all_to_all_autograd(comm, xg, send, recv, "diff").sum().backward()
    t = torch.ones(7, dtype=torch.float64)
    comm.all_reduce(t, "ar")
    comm.all_gather(torch.zeros(4, dtype=torch.int32), "ag")
    pending = comm.all_to_all(torch.zeros(sum(send), 2), send, recv, "async", async_op=True)
    pending.wait()
    if p > 1:
        buf = torch.zeros(10)
        if r == 0:
            comm.send(torch.ones(10), 1, "p2p")
        elif r == 1:
            comm.recv(buf, 0, "p2p")
    return {"stats": comm.stats(), "y": y, "grad": xg.grad, "t": t}


def test_counts_match_formulas_on_three_ranks():
    p = 3
    results = run_spmd(_exercise, p)
    for r, res in enumerate(results):
        st = res["stats"]
        send = [d + 1 for d in range(p)]
        off_sent = sum(send) - send[r]
        off_recv = (r + 1) * (p - 1)
        assert st["a2a"]["sent_bytes"] == off_sent * 3 * 4 and st["a2a"]["recv_bytes"] == off_recv * 3 * 4
        assert st["diff/fwd"]["sent_bytes"] == off_sent * 5 * 4
        assert st["diff/bwd"]["sent_bytes"] == off_recv * 5 * 4 and st["diff/bwd"]["recv_bytes"] == off_sent * 5 * 4
        assert st["ar"]["sent_bytes"] == 7 * 8 and st["ar"]["calls"] == 1
        assert st["ag"]["sent_bytes"] == 16 and st["ag"]["recv_bytes"] == 16 * (p - 1)
        assert st["async"]["sent_bytes"] == off_sent * 2 * 4
        assert st["a2a"]["seconds"] > 0
        # payload correctness: rows from rank d carry value d
        assert torch.equal(res["y"][:, 0], torch.tensor([float(d) for d in range(p) for _ in range(r + 1)]))
        assert torch.equal(res["grad"], torch.ones(sum(send), 5))
        assert torch.equal(res["t"], torch.full((7,), float(p), dtype=torch.float64))
    assert results[0]["stats"]["p2p"]["sent_bytes"] == 40 and results[1]["stats"]["p2p"]["recv_bytes"] == 40
    assert "p2p" not in results[2]["stats"]


def test_single_rank_world_counts_nothing():
    from graphpar.strategies.comm import Communicator

    comm = Communicator()
    y = comm.all_to_all(torch.ones(4, 2), [4], [4], "a2a")
    assert torch.equal(y, torch.ones(4, 2)) and comm.total_bytes() == (0, 0)
