"""The Runs and Run pages through AppTest: a selection belongs to runs, links to runs that are
gone, labels that show where people look, and the table as a CSV file."""

from __future__ import annotations

import csv
import io

from streamlit.runtime.media_file_manager import MediaFileManager

from jobs import queue

from tests.jobs_helpers import tiny_yaml
from tests.app.test_app import app, button, select_rows


def ended(home, name: str) -> str:
    """A job that is over without running: queued, then cancelled at once."""
    job_id = queue.submit(tiny_yaml(name), home)
    queue.cancel(job_id, home)
    return job_id


def test_a_selection_stays_with_its_run_or_is_cleared(tmp_path, monkeypatch):
    picked, other = ended(tmp_path, "picked"), ended(tmp_path, "other")
    at = app(tmp_path, monkeypatch, "views/runs.py")
    assert list(at.dataframe[0].value["name"]) == ["other", "picked"]
    select_rows(at, [1])
    for name in ("arrival-1", "arrival-2"):  # new rows above it, as a refresh shows them
        queue.submit(tiny_yaml(name), tmp_path)
    at.run()
    assert list(at.dataframe[0].value["name"])[1:] == ["arrival-1", "other", "picked"]
    button(at, "Delete").click().run()
    assert at.warning[-1].value.endswith(f"picked · {picked[-6:]}")  # the run that was picked
    button(at, "Keep them").click().run()

    at.text_input(key="search").set_value("pick").run()  # filtered: still that run
    button(at, "Delete").click().run()
    assert at.warning[-1].value.endswith(f"picked · {picked[-6:]}")
    button(at, "Keep them").click().run()
    at.text_input(key="search").set_value("other").run()  # filtered out: cleared, not moved
    assert button(at, "Delete").disabled and button(at, "Open").disabled
    assert {j["id"] for j in queue.list_jobs(tmp_path)} >= {picked, other}


def test_a_link_to_a_run_that_is_gone_says_so_and_offers_the_runs(tmp_path, monkeypatch):
    there = queue.submit(tiny_yaml("there"), tmp_path)
    gone = "20000101-000000-abcdef"
    at = app(tmp_path, monkeypatch, "views/run.py", job=gone)
    assert not at.exception
    assert f"No run {gone} in this home" in at.error[0].value
    assert not any("there" in t.value for t in at.title)  # no other run shown in its place
    assert at.query_params["job"] == gone  # the link is left as it was
    links = {link.proto.label: link.proto.query_string for link in at.get("page_link")}
    assert links[f"there · {there[-6:]} · queued"] == f"job={there}"
    assert "All runs" in links


def test_saved_labels_are_confirmed_and_notes_show_on_both_pages(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("first"), tmp_path)
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    notes = "lr looks high\ntry 0.05 next"
    next(t for t in at.text_area if t.label == "Notes").set_value(notes)
    next(t for t in at.text_input if t.label.startswith("Tags")).set_value("sweep")
    button(at, "Save").click().run()
    assert [t.value for t in at.toast] == ["Saved the name, notes and tags of first."]
    assert at.text[0].value == notes  # under the title

    at = app(tmp_path, monkeypatch, "views/runs.py")
    table = at.dataframe[0]
    assert list(table.proto.column_order)[:8] == [  # what people scan: progress, then the ticket
        "name", "state", "progress", "sparsity reached %", "ticket round", "ticket sparsity %",
        "ticket val acc", "ticket test acc"]
    assert "notes" in table.proto.column_order and "id" not in table.proto.column_order
    row = table.value.iloc[0]
    assert row["notes"] == notes and row["tags"] == "sweep"
    assert table.proto.placeholder == "–"  # a queued run has no accuracy yet: not "None"


def test_the_runs_table_downloads_as_csv_with_its_columns_and_filter(tmp_path, monkeypatch):
    made = {}  # what each download button is given
    original = MediaFileManager.add

    def capture(self, data, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data
        return original(self, data, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", capture)
    tagged = queue.submit(tiny_yaml("tagged"), tmp_path)
    queue.annotate(tagged, tmp_path, tags=["sweep"], notes="first, with a comma")
    queue.submit(tiny_yaml("plain"), tmp_path)
    at = app(tmp_path, monkeypatch, "views/runs.py")
    at.text_input(key="search").set_value("sweep").run()
    assert "Download CSV" in [b.label for b in at.get("download_button")]
    table = list(csv.reader(io.StringIO(made["runs.csv"].decode())))
    assert table[0] == list(at.dataframe[0].proto.column_order)  # the visible columns
    assert len(table) == 2  # the filter: the tagged run only
    row = dict(zip(table[0], table[1]))
    assert (row["name"], row["state"], row["tags"]) == ("tagged", "queued", "sweep")
    assert row["notes"] == "first, with a comma" and row["ticket val acc"] == ""
