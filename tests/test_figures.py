"""Figures a paper can use: every figure type rendered on fixed synthetic records, checked with
matplotlib's own text boxes (no two texts overlap, none leaves the canvas, no legend over data); one
colour per strategy everywhere; the sweep table and the figure of one sweep show the same numbers."""
from __future__ import annotations

import re

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.pyplot as plt
import pytest
from helpers import fake_record

from graphpar.bench import metrics, results
from graphpar.bench.harness import figdata, figlayout, figstyle, plots
from graphpar.bench.tables import bench_table

A2A = {"layer1/halo/fwd": ("all_to_all", 2, 40_000), "grad/allreduce": ("all_reduce", 1, 8_000)}


def _records(eval_every: int = 1) -> list[dict]:
    """single, tensor, partition (exact and --stale 4), pipeline (with a bubble), sampling at P=2 and 4."""
    recs = [fake_record("single", 1, compute_s=0.2, eval_every=eval_every)]
    for p in (2, 4):
        recs.append(fake_record("tensor", p, compute_s=0.2 / p, tags=A2A, comm_s=0.01, imbalance=1.5,
                                eval_every=eval_every, info={"analytic_bytes_per_epoch": 2 * 40_000 * p + 8_000 * p}))
        recs.append(fake_record("partition", p, compute_s=0.22 / p, tags=A2A, comm_s=0.02, eval_every=eval_every))
        recs.append(fake_record("partition", p, compute_s=0.22 / p, tags=A2A, comm_s=0.005, eval_every=eval_every,
                                options={"stale": 4}))
        pipe = fake_record("pipeline", p, compute_s=0.25 / p, tags={"stage/act": ("send", 4, 10_000)}, comm_s=0.03,
                           eval_every=eval_every)
        for w in pipe["workers"]:  # the stage waits 20 ms of its 30 ms of communication for its peer
            w["stage_epochs"] = [{"compute_s": 0.1, "idle_s": 0.02, "chunks": 4} for _ in w["wall_s"]]
        recs.append(pipe)
        recs.append(fake_record("sampling", p, compute_s=0.3 / p, tags=A2A, eval_every=eval_every))
    return recs


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """Every figure of one plot_all, kept open (figstyle.save intercepted) to inspect what was drawn."""
    figs: dict[str, object] = {}

    def save(fig, path, formats=("png",)):
        figs[path.name] = fig
        return [path.with_suffix("." + f) for f in formats]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figstyle, "save", save)
        plots.plot_all(_records(), tmp_path_factory.mktemp("fig"))
    yield figs
    plt.close("all")


def test_every_figure_type_is_drawn(kept):
    kinds = sorted(name.split("_")[0] for name in kept)
    assert kinds == ["accuracy", "breakdown", "comm", "load", "speedup", "tta"]


@pytest.mark.parametrize("kind", ["accuracy", "breakdown", "comm", "load", "speedup", "tta"])
def test_no_text_overlaps_or_leaves_the_canvas(kept, kind):
    fig = next(f for name, f in kept.items() if name.startswith(kind + "_"))
    assert figlayout.collisions(fig) == []
    assert len(figlayout.text_boxes(fig)) > 10  # the check saw the figure's texts


def test_collision_check_catches_what_it_must():
    """The checker itself: overlapping texts, a clipped title and a legend over data are each reported."""
    with figstyle.paper():
        fig, ax = figlayout.new((3.3, 2.5))
        ax.plot([0, 1], [0, 1], label="a line")
        ax.text(0.5, 0.5, "first label")
        ax.text(0.5, 0.5, "second label")
        ax.legend(loc="upper left")
        fig.suptitle("a title much too long to fit the width of a single-column figure, so it runs off", x=0.3,
                     ha="left")
        problems = figlayout.collisions(fig)
    plt.close(fig)
    assert any("overlap: 'first label' and 'second label'" in p for p in problems)
    assert any(p.startswith("off the canvas: 'a title") for p in problems)
    assert any(p.startswith("legend over the data") for p in problems)


def test_labels_that_do_not_fit_are_left_out():
    with figstyle.paper():
        fig, ax = figlayout.new((3.3, 2.5))
        ax.plot([1, 2], [1, 2])
        figlayout.finish(fig, "t", ["c"])
        omitted = figlayout.place_labels(ax, [(1.5, 1.5, "same spot", "k")] * 40)
        problems = figlayout.collisions(fig)
    plt.close(fig)
    assert 0 < omitted < 40 and problems == []


def _colors(fig) -> dict[str, set[str]]:
    """Series label -> colours drawn under it (legend handles: lines, bar patches)."""
    out: dict[str, set[str]] = {}
    for legend in fig.legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            if isinstance(handle, matplotlib.lines.Line2D):
                color = handle.get_color()
            elif isinstance(handle, matplotlib.patches.Rectangle):
                color = handle.get_facecolor()
            else:  # markers of a formula, not a strategy
                continue
            out.setdefault(text.get_text(), set()).add(matplotlib.colors.to_hex(color))
    return out


def test_one_colour_per_strategy_in_every_figure(kept):
    seen: dict[str, set[str]] = {}
    for name in ("speedup", "comm", "tta", "accuracy"):
        fig = next(f for n, f in kept.items() if n.startswith(name + "_"))
        for label, colors in _colors(fig).items():
            strategy = re.sub(r" P=\d+$", "", label)
            seen.setdefault(strategy, set()).update(colors)
    assert seen["tensor"] == {figstyle.STRATEGY_COLORS["tensor"]}
    assert seen["partition"] == {figstyle.STRATEGY_COLORS["partition"]}
    assert seen["pipeline"] == {figstyle.STRATEGY_COLORS["pipeline"]}
    stale = seen["partition (stale 4)"]
    assert len(stale) == 1 and stale != seen["partition"]  # a shade of partition's colour, not another hue
    assert len({c for s, c in figstyle.STRATEGY_COLORS.items()}) == len(figstyle.STRATEGY_COLORS)


def test_breakdown_draws_the_bubble_as_idle_not_communication():
    pipe = next(r for r in _records() if r["config"]["strategy"] == "pipeline" and r["config"]["workers"] == 2)
    s = metrics.summary(pipe)
    assert s["bubble_s"] == pytest.approx(0.02)
    assert s["comm_exposed_s"] == pytest.approx(0.03 - 0.02)
    assert s["idle_total_s"] == pytest.approx(s["idle_s"] + 0.02)
    cols = [c for c, *_ in figstyle.PHASE_STYLE]
    assert "comm_exposed_s" in cols and "idle_total_s" in cols and "phase.comm.wall_s" not in cols
    colors = {label: color for _, color, _, label in figstyle.PHASE_STYLE}
    assert colors["idle (bubble, barrier wait)"] != colors["communication (exposed)"]


def test_figures_draw_one_family(tmp_path, capsys):
    """Runs of another evaluation cadence or code version are left out (and said so), never mixed."""
    recs = _records(eval_every=1)
    old = fake_record("tensor", 2, compute_s=0.01, eval_every=0)  # 10x faster, other cadence: not drawn
    old["time_utc"] = "2000-01-01T00:00:00Z"
    other_sha = fake_record("partition", 8, compute_s=0.01, eval_every=1)
    other_sha["env"] = {**other_sha["env"], "git_sha": "def456"}
    other_sha["time_utc"] = "2000-01-01T00:00:00Z"
    df = results.load_runs(recs + [old, other_sha], latest=True)
    g, left_out = figdata.one_family(df, recs + [old, other_sha])
    assert left_out == 2 and set(g["git_sha"]) == {"abc123"} and set(g["eval_every"]) == {1}
    mixed, left_mixed = figdata.one_family(df, recs + [old, other_sha], mix_versions=True)
    assert left_mixed == 1  # the other code version joins; the other cadence still does not
    plots.plot_all(recs + [old, other_sha], tmp_path)
    assert "2 run(s) of other configurations" in capsys.readouterr().err


def _table_speedups(text: str, strategy: str) -> list[float]:
    return [float(re.search(r"\s(\d+\.\d+)x\s", line).group(1)) for line in text.splitlines()
            if line.startswith(strategy + " ")]


@pytest.mark.parametrize("stale", [1, 4])
def test_sweep_table_and_figure_show_the_same_numbers(stale):
    """A sweep of single + partition (exact or --stale 4), 3 repeats with different timings: the
    table's speedups are the figure's, to the digit the table prints."""
    recs = []
    for i, scale in enumerate((1.0, 1.3, 0.8)):
        recs.append(fake_record("single", 1, compute_s=0.2, time_scale=scale))
        for p in (2, 4):
            recs.append(fake_record("partition", p, compute_s=0.22 / p, tags=A2A, comm_s=0.01,
                                    time_scale=(1.0, 0.7, 1.5)[i], options={"stale": stale}))
    table = _table_speedups(bench_table(recs), "partition")
    df, _ = figdata.one_family(results.load_runs(recs, latest=True), recs)
    drawn = figdata.speedup_points(df)
    assert [float(f"{v:.2f}") for v in drawn["speedup"]] == table
    assert len(table) == 2 and (drawn["lo"] < drawn["speedup"]).all() and (drawn["hi"] > drawn["speedup"]).all()


def test_formats_and_300_dpi(tmp_path):
    recs = _records()
    df, _ = figdata.one_family(results.load_runs(recs, latest=True), recs)
    paths = plots.plot_speedup(df, tmp_path / "speedup_toy", ("png", "pdf", "svg"))
    assert [p.name for p in paths] == ["speedup_toy.png", "speedup_toy.pdf", "speedup_toy.svg"]
    png = paths[0]
    from PIL import Image
    with Image.open(png) as im:
        assert round(im.info["dpi"][0]) == 300 and im.width == pytest.approx(3.3 * 300, abs=2)
    assert next(p for p in paths if p.suffix == ".pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="--format: jpg is not one of png, pdf, svg"):
        figstyle.parse_formats("png,jpg")
    assert figstyle.parse_formats("PDF, png") == ("pdf", "png")


def test_local_edges_are_counted_without_self_loops():
    """The one definition: partition's local edges (METIS-free, contiguous parts) sum to the graph's edges,
    as tensor's (every rank: all of them) equal them; the gcn self-loops are not counted."""
    import torch

    from graphpar.strategies.partitioning.halo import build_local_view

    src = torch.tensor([0, 1, 2, 3, 1, 2])
    dst = torch.tensor([1, 2, 3, 0, 0, 1])

    class G:
        num_nodes = 4

    g = G()
    g.src, g.dst = src, dst
    part = torch.tensor([0, 0, 1, 1])
    views = [build_local_view(g, part, r, "gcn") for r in (0, 1)]
    assert sum(v.stats()["local_edges"] for v in views) == 6
    assert sum(v.num_edges for v in views) == 6 + 4  # the aggregation itself still has the self-loops


def _paper_records() -> list[dict]:
    recs = [fake_record("single", 1, compute_s=0.2, dataset="rmat-arxiv", hidden=64, epochs=4, dropout=0.5),
            fake_record("single", 1, compute_s=0.15, dataset="rmat-arxiv", hidden=64, epochs=4, dropout=0.5,
                        model="decoupled")]
    for p in (2, 4):
        recs.append(fake_record("partition", p, compute_s=0.2 / p * (1.1 if p == 4 else 1.0), tags=A2A,
                                dataset="rmat-arxiv", hidden=64, epochs=4, dropout=0.5))
        recs.append(fake_record("tensor", p, compute_s=0.3 / p, tags={"x": ("all_to_all", 1, 9_000)},
                                dataset="rmat-arxiv", hidden=64, model="decoupled", epochs=4, dropout=0.5,
                                info={"mode": "decoupled"}))
    gp = "rmat:nodes=40000,edges=320000,feat=64,classes=16,seed=0"
    for p in (2, 4):
        for layers in (4, 6, 8):
            recs.append(fake_record("partition", p, tags={"h": ("all_to_all", layers, 50_000)}, dataset=gp, hidden=64,
                                    layers=layers, epochs=3, dropout=0.0, info={"analytic_bytes_per_epoch": 1e5 * p}))
            recs.append(fake_record("tensor", p, tags={"t": ("all_to_all", 2 * layers, 40_000)}, dataset=gp,
                                    hidden=64, layers=layers, epochs=3, dropout=0.0, info={"mode": "naive"}))
            recs.append(fake_record("pipeline", p, tags={"s": ("send", 2, 30_000)}, dataset=gp, hidden=64,
                                    layers=layers, epochs=3, dropout=0.0))
    return recs


@pytest.mark.parametrize("which", ["neutrontp", "gnnpipe"])
def test_paper_figures_lay_out_and_say_what_ran(which, tmp_path, monkeypatch):
    from graphpar.bench.harness.paper import write_report
    from graphpar.bench.record import append_record

    path = tmp_path / "runs.jsonl"
    for rec in _paper_records():
        append_record(rec, path)
    figs = {}

    def save(fig, p, formats=("png",)):
        figs[p.name] = fig
        return [p.with_suffix("." + f) for f in formats]

    monkeypatch.setattr(figstyle, "save", save)
    report = write_report(which, path, tmp_path, 15.0, 20.0, 16, ("png", "pdf"))
    fig = next(iter(figs.values()))
    assert figlayout.collisions(fig) == []
    text = " ".join(t.get_text().replace("\n", " ") for t, _ in figlayout.text_boxes(fig))
    assert "+dirty" not in text and "abc123" in text and "hidden 64" in text
    if which == "gnnpipe":
        assert "GCN" in text and "naive per-layer mode" in text
    else:
        assert len(fig.axes) == 2 and "measured here" in text and "projected to P=16" in text
        assert "decoupled model: single, tensor in decoupled mode" in text and "GCN: single, partition" in text
        assert re.search(r"shaded: ±\d+%", text)  # the validated band, from these runs
    assert "figures/" + which in report.read_text()
    plt.close("all")


def test_bad_format_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys):
    from graphpar.bench import cli
    from graphpar.bench.record import append_record

    runs = tmp_path / "runs.jsonl"
    append_record(fake_record("single", 1), runs)
    monkeypatch.chdir(tmp_path)
    for argv in (["plot", "--results", str(runs), "--format", "png,jpg"],
                 ["paper", "gnnpipe", "--results", str(runs), "--format", "tiff"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not one of png, pdf, svg" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]


def test_parity_figure_uses_the_shared_style_and_does_not_collide(tmp_path, monkeypatch):
    """``graphpar parity``'s figure: the strategy's colour from figstyle, PNG and PDF, no text collisions."""
    from graphpar.bench.harness import parity

    curve = [(e, 0.3 + 0.002 * e) for e in range(0, 200, 20)]
    runs = {"reference": [{"seed": s, "test_acc": 0.8, "curve": curve} for s in range(4)],
            "strategy": [{"seed": s, "test_acc": 0.79, "curve": curve} for s in range(4)]}
    seen = {}
    real_save = figstyle.save

    def checking_save(fig, path, formats=("png",)):
        fig.canvas.draw()
        seen["collisions"] = figlayout.collisions(fig)
        seen["colors"] = {line.get_color() for line in fig.axes[0].get_lines()}
        seen["fig"] = fig
        return real_save(fig, path, formats)

    monkeypatch.setattr(figstyle, "save", checking_save)
    title = "parity: partition --stale 4 P=2 vs single, amazon-computers, gcn L=2, 200 epochs, seeds 0..3"
    parity.plot_parity(runs, title, tmp_path / "parity.png", "partition")
    assert (tmp_path / "parity.png").is_file() and (tmp_path / "parity.pdf").is_file()
    assert seen["collisions"] == []
    assert figstyle.strategy_color("single") in seen["colors"]
    assert figstyle.strategy_color("partition", "stale") in seen["colors"]
    # a stale pipeline's cool-down (its whole-graph epochs) is shaded and named in the legend
    for r in runs["strategy"]:
        r["whole_graph_epochs"] = [(160, 199)]
    parity.plot_parity(runs, title.replace("partition --stale 4", "pipeline"), tmp_path / "cool.png", "pipeline")
    assert seen["collisions"] == [] and (tmp_path / "cool.png").is_file()
    labels = [t.get_text() for t in seen["fig"].legends[0].get_texts()]
    assert any(label.startswith("whole-graph epochs") for label in labels), labels
