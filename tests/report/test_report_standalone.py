"""report.html stands alone: a reader with only the mailed file sees the ticket, every round and
the config, with the user's names as plain text."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import yaml

from lottery_engine.foundations import runfolder
from lottery_engine.report import page as report


class _Sections(HTMLParser):
    """The text of each element with an id, and the number of <tr> inside each."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id")
        if ident:
            self.text[ident], self.rows[ident] = "", 0
        self._open.append((tag, ident))
        if tag == "tr":
            for _, inside in self._open:
                if inside:
                    self.rows[inside] += 1

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, inside in self._open:
            if inside:
                self.text[inside] += data


def _parsed(run_dir: Path) -> tuple[str, _Sections]:
    page = (run_dir / runfolder.REPORT_HTML).read_text()
    sections = _Sections()
    sections.feed(page)
    return page, sections


def test_the_report_holds_the_ticket_every_round_and_the_config(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    report.write(run)
    page, sections = _parsed(run)
    records = runfolder.read_rounds(run)
    ticket = runfolder.read_json(run / runfolder.TICKET_JSON)
    assert sections.rows["rounds"] == 1 + len(records)  # the header and a row per round
    rounds = sections.text["rounds"]
    assert all(title in rounds for title in ("sparsity %", "remaining", "val acc", "test acc",
                                             "val F1", "early-stop step", "FLOPs", "train s"))
    assert f"{records[-1]['flops']:,}" in rounds
    facts = sections.text["ticket"]
    assert f"round{ticket['round']}" in facts
    winner = records[ticket["round"]]
    for value in (f"{ticket['global_sparsity']:.1%}", f"{ticket['reloaded_val_accuracy']:.4f}",
                  f"{ticket['test_accuracy']:.4f}", f"{winner['early_stop_step']:,.0f}",
                  f"{ticket['dense_bytes']:,} bytes", f"{ticket['compressed_bytes']:,} bytes"):
        assert value in facts
    assert yaml.safe_load(sections.text["config"]) == yaml.safe_load(
        (run / runfolder.CONFIG).read_text())
    assert page.count("window.PlotlyConfig") == 1  # plotly.js inlined, once
    assert "<script src=" not in page  # nothing fetched when opened


def test_names_in_the_report_are_plain_text(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    config = yaml.safe_load((run / runfolder.CONFIG).read_text())
    config["run"]["name"] = "<b>x</b>"
    runfolder.atomic_write(run / runfolder.CONFIG, yaml.safe_dump(config, sort_keys=False))
    report.write(run)
    page, sections = _parsed(run)
    assert "<b>x</b>" not in page
    assert "name: <b>x</b>" in sections.text["config"]  # shown as written, escaped in the file
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_run_without_a_ticket_says_so(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / runfolder.TICKET_JSON).unlink()
    report.write(run, markdown=False)
    _, sections = _parsed(run)
    assert "No winning ticket" in sections.text["ticket"]
    assert sections.rows["rounds"] == 1 + len(runfolder.read_rounds(run))
