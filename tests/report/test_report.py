import json

from lottery_engine.foundations import runfolder
from lottery_engine.report import compare, page
from lottery_engine.report import figures as report

from tests.conftest import round_record


def test_figures_hold_every_round(tiny_run):
    records = runfolder.read_rounds(tiny_run)
    fig = report.sparsity_accuracy(records)
    names = [t.name for t in fig.data]
    assert names == ["val accuracy", "val F1", "inference ms/sample"]
    assert list(fig.data[0].y) == [r["val_accuracy"] for r in records]
    assert fig.data[0].line.color == "#E64B35" and fig.data[1].line.color == "#4DBBD5"
    assert any(s.line.dash == "dash" for s in fig.layout.shapes)  # the dense baseline

    heat = report.layer_heatmap(records)
    assert len(heat.data[0].z) == len(records) and list(heat.data[0].x)[0] == "conv_1"
    ticket = runfolder.read_json(tiny_run / runfolder.TICKET_JSON)
    remaining = report.remaining_weights(records, ticket["round"])
    assert remaining.layout.xaxis.type == "log"
    assert f"round {ticket['round']}" in remaining.layout.annotations[0].text


def test_heatmap_shortens_long_layer_names_on_its_axis_only():
    names = ["encoder/block_3/conv_2:depthwise", "head/block_3/conv_2:depthwise",
             "stage_1/block_12/unit_3/conv_2:kernel", "output"]
    records = [{"round": r, "layer_sparsity": dict.fromkeys(names, 0.2 * r)} for r in (0, 1)]
    heat = report.layer_heatmap(records)
    assert list(heat.data[0].x) == list(heat.layout.xaxis.tickvals) == names  # the data
    assert list(heat.layout.xaxis.ticktext) == [  # tails shared by two layers grow to a '/'
        "encoder/block_3/conv_2:depthwise", "head/block_3/conv_2:depthwise",
        "…unit_3/conv_2:kernel", "output"]
    assert heat.data[0].customdata[1][0] == names[0]  # the full name in the hover
    assert "%{customdata}" in heat.data[0].hovertemplate
    assert report.tick_labels(["encoder/block_3/conv_2:depthwise", "conv_1"]) == [
        "…block_3/conv_2:depthwise", "conv_1"]  # the tail, up to a '/', 24 characters at most
    twins = ["backbone/tower_left/block_1/conv_2:kernel",
             "backbone/tower_right/block_1/conv_2:kernel"]
    assert report.tick_labels(twins) == ["…tower_left/block_1/conv_2:kernel",
                                         "…tower_right/block_1/conv_2:kernel"]  # never clash


def test_markdown_table_has_a_row_per_round(tiny_run):
    table = (tiny_run / runfolder.REPORT_MD).read_text().splitlines()
    assert table[0].startswith("| round | sparsity %")
    assert len(table) == 2 + len(runfolder.read_rounds(tiny_run))
    assert table[3].startswith("| 1 | 20.0% |")


def test_compare_overlays_controls(tiny_run):
    series = runfolder.series(tiny_run)
    fig = compare.compare({"tiny": {"tiny": series}})
    assert [t.name for t in fig.data] == ["ticket", "random prune", "random reinit"]
    colours = {t.line.color for t in fig.data}
    assert len(colours) == 3  # one run: a colour per series
    two = compare.compare({"a <b>": {"a <b>": series}, "c": {"c": series}})
    assert two.data[0].name == "a &lt;b&gt; · ticket"  # labels are plain text
    assert two.data[0].line.color != two.data[3].line.color  # a colour per run
    assert [t.line.dash for t in two.data[:3]] == ["solid", "dot", "dash"]  # a dash per series


def test_figures_keep_the_users_view_and_use_whole_round_ticks(tiny_run):
    records = runfolder.read_rounds(tiny_run)
    controls = {k: v for k, v in runfolder.series(tiny_run).items() if k != "imp"}
    fig = report.sparsity_accuracy(records, "round", controls)
    assert fig.layout.uirevision == "sparsity-round" and fig.layout.xaxis.dtick == 1
    assert "val accuracy, random reinit" in [t.name for t in fig.data]
    log = report.sparsity_accuracy(records, "remaining")
    assert log.layout.xaxis.type == "log"
    assert list(log.data[0].x) == [r["remaining_prunable"] for r in records]
    assert report.flops_per_round(records).layout.xaxis.dtick == 1
    assert all(f.layout.uirevision for f in page.figures(tiny_run))


def test_smoothing_is_an_exponential_moving_average():
    assert report.smooth([1.0, 3.0, 3.0], 0.0) == [1.0, 3.0, 3.0]
    assert report.smooth([1.0, 3.0, 3.0], 0.5) == [1.0, 2.0, 2.5]


def test_rounds_are_read_incrementally(tmp_path):
    runfolder.append_round(tmp_path, round_record(0))
    records, offset = runfolder.read_rounds_from(tmp_path / runfolder.ROUNDS)
    assert records == [round_record(0)]
    one, two = (json.dumps(round_record(r).to_json()) for r in (1, 2))
    with open(tmp_path / runfolder.ROUNDS, "a") as f:
        f.write(f"{one}\n{two[:40]}")  # a line still being written
    records, offset = runfolder.read_rounds_from(tmp_path / runfolder.ROUNDS, offset)
    assert records == [round_record(1)]
    with open(tmp_path / runfolder.ROUNDS, "a") as f:
        f.write(two[40:] + "\n")
    assert runfolder.read_rounds_from(tmp_path / runfolder.ROUNDS, offset)[0] == \
        [round_record(2)]
