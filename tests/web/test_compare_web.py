"""Owner comparison pages: background run with progress, replay, one at a time, the GPU notice, blind votes."""
from __future__ import annotations

import json
import re
import time

import pytest
from clients import login

from deckchat.domain import comparisons
from deckchat.extensions import db
from deckchat.models import ChatExchange, ComparisonRun, ComparisonVote, Deck, utcnow
from deckchat.web import compare_job


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    from deckchat.ml.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("compare-models")
    return [str(build_tiny_model(root / "alpha", "gpt2")), str(build_tiny_model(root / "beta", "t5"))]


@pytest.fixture
def compare_app(app_factory, tiny_pair):
    return app_factory(COMPARE_MODELS=",".join(tiny_pair))


@pytest.fixture
def owner_client(compare_app, owner_deck_factory):
    _, deck_id = owner_deck_factory(compare_app)
    client = compare_app.test_client()
    login(client)
    return client, deck_id


def _wait_done(client, url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        state = client.get(url).get_json()
        seen.append(state)
        if state["status"] in ("done", "failed"):
            return {**state, "seen": seen}
        time.sleep(0.3)
    pytest.fail(f"comparison did not finish: {seen[-1]}")


def _start(client, deck_id: int, models: list[str], **extra) -> str:
    response = client.post(f"/decks/{deck_id}/compare", data={"models": models, "source": "example", "runs": 1,
                                                              "load_format": "auto", **extra})
    assert response.status_code == 303, response.data[:500]
    return response.location


def test_owner_starts_a_comparison_follows_it_and_reads_the_report(compare_app, owner_client, tiny_pair):
    client, deck_id = owner_client
    page = client.get(f"/decks/{deck_id}/compare").data.decode()
    import torch

    assert ('data-testid="gpu-memory"' if torch.cuda.is_available() else 'data-testid="cpu-only"') in page
    assert all(f'value="{m}"' in page for m in tiny_pair) and 'value="gpt2-xl"' in page
    location = _start(client, deck_id, tiny_pair)
    run_id = int(re.search(r"/compare/(\d+)$", location).group(1))
    state = _wait_done(client, f"/decks/{deck_id}/compare/{run_id}/status")
    assert state["status"] == "done", state
    assert state["done"] == state["total"] == 2 * 4
    html = client.get(location).data.decode()
    assert html.count('data-testid="compare-question"') == 4 and html.count('data-testid="compare-model-row"') == 2
    assert "How much have you raised?" in html
    report = client.get(f"/decks/{deck_id}/compare/{run_id}/report.json").get_json()
    assert [m["status"] for m in report["models"]] == ["ok", "ok"]
    with compare_app.app_context():
        title = db.session.get(Deck, deck_id).title
    assert report["script"]["deck"] == deck_id and report["title"] == title  # the deck's title fills the persona
    assert all(q["context"] and q["context"][0]["source"].startswith(("slide:", "faq:", "doc:"))
               for q in report["questions"])  # retrieval from the deck, not the script's material
    standalone = client.get(f"/decks/{deck_id}/compare/{run_id}/report.html")
    assert standalone.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert b"<script" not in standalone.data and b"How exactly does it work?" in standalone.data


def test_replay_asks_the_questions_investors_asked(compare_app, owner_client, tiny_pair):
    client, deck_id = owner_client
    assert b"nothing to replay" in client.post(f"/decks/{deck_id}/compare", data={
        "models": tiny_pair[:1], "source": "replay", "runs": 1, "load_format": "auto"}, follow_redirects=True).data
    with compare_app.app_context():
        for question, slide in [("What is the churn?", 2), ("what is the churn", 3), ("Who is the CEO?", None)]:
            db.session.add(ChatExchange(deck_id=deck_id, question=question, slide=slide))
        db.session.commit()
    location = client.post(f"/decks/{deck_id}/compare", data={"models": tiny_pair[:1], "source": "replay", "runs": 1,
                                                               "load_format": "auto"}).location
    run_id = int(location.rsplit("/", 1)[1])
    assert _wait_done(client, f"/decks/{deck_id}/compare/{run_id}/status")["status"] == "done"
    report = client.get(f"/decks/{deck_id}/compare/{run_id}/report.json").get_json()
    assert [(q["text"], q["slide"]) for q in report["questions"]] == [("What is the churn?", 2), ("Who is the CEO?", None)]
    assert report["script"]["source"] == "replay" and report["script"]["accumulate"] is False


def test_one_comparison_at_a_time(compare_app, owner_client, tiny_pair):
    client, deck_id = owner_client
    assert compare_job._job_lock.acquire(blocking=False)
    try:
        response = client.post(f"/decks/{deck_id}/compare", data={"models": tiny_pair, "source": "example",
                                                                  "runs": 1, "load_format": "auto"},
                               follow_redirects=True)
        assert b"already running" in response.data
        assert b'data-testid="compare-busy"' in client.get(f"/decks/{deck_id}/compare").data
    finally:
        compare_job._job_lock.release()
    with compare_app.app_context():
        assert db.session.query(ComparisonRun).count() == 0


def test_a_row_left_running_by_a_restart_does_not_block_new_comparisons(compare_app, owner_client, monkeypatch):
    client, deck_id = owner_client
    with compare_app.app_context():
        deck = db.session.get(Deck, deck_id)
        orphan = comparisons.create_run(deck, ["x"], "example", {"runs": 1})
        orphan.status, orphan.beat_at = "running", utcnow().replace(year=2020)
        db.session.commit()
        orphan_id = orphan.id
    monkeypatch.setattr(compare_job, "start", lambda app, run_id: True)
    client.post(f"/decks/{deck_id}/compare", data={"models": ["gpt2-xl"], "source": "example", "runs": 1,
                                                   "load_format": "dummy"})
    with compare_app.app_context():
        assert db.session.get(ComparisonRun, orphan_id).status == "failed"
        assert db.session.query(ComparisonRun).count() == 2


def test_a_gpu_live_model_needs_an_explicit_confirmation(compare_app, owner_client, monkeypatch):
    client, deck_id = owner_client
    live = {"engine": "local", "model": "gpt-j-6b", "in_process": True, "gpu": True, "device": "cuda:0",
            "gpu_name": "NVIDIA H100", "free_mib": 51234, "total_mib": 81559, "needs_confirmation": True}
    monkeypatch.setattr(compare_job, "live_engine", lambda app: live)
    started = []
    monkeypatch.setattr(compare_job, "start", lambda app, run_id: started.append(run_id) or True)
    page = client.get(f"/decks/{deck_id}/compare").data.decode()
    assert "51234 MiB free" in page and 'data-testid="compare-confirm"' in page and "gpt-j-6b" in page
    form = {"models": ["gpt2-xl"], "source": "example", "runs": 1, "load_format": "dummy"}
    assert b"Confirm that" in client.post(f"/decks/{deck_id}/compare", data=form, follow_redirects=True).data
    assert not started
    assert client.post(f"/decks/{deck_id}/compare", data={**form, "confirm_memory": "y"}).status_code == 303
    assert len(started) == 1
    with compare_app.app_context():
        run = db.session.get(ComparisonRun, started[0])
        assert run.settings["memory_confirmed"] and run.settings["live"]["free_mib"] == 51234


def test_models_outside_the_offered_list_are_refused(owner_client):
    client, deck_id = owner_client
    response = client.post(f"/decks/{deck_id}/compare", data={"models": ["/etc"], "source": "example", "runs": 1,
                                                               "load_format": "auto"}, follow_redirects=True)
    assert b"is not a valid choice" in response.data


def test_the_job_waits_until_the_live_engine_is_idle(monkeypatch, app):
    from deckchat.ml import runtime

    busy = iter([{"waiting": 2, "active": 1}, {"waiting": 0, "active": 1}, {"waiting": 0, "active": 0}])

    class Engine:
        def stats(self):
            return next(busy)

    class Runtime:
        def get(self):
            return Engine(), None

    monkeypatch.setattr(runtime, "get_runtime", lambda app: Runtime())
    messages: list[str] = []
    compare_job.wait_until_idle(app, messages.append, poll_s=0.01)
    assert messages == ["waiting for the live assistant to answer 3 investor question(s) first",
                        "waiting for the live assistant to answer 1 investor question(s) first"]


def _report() -> dict:
    """A finished report of two models, built through the real report builder."""
    from deckchat.ml.compare import CompareOptions, summarize
    from deckchat.ml.compare_report import build_report
    from deckchat.ml.compare_script import parse_script

    script = parse_script({"questions": ["What do you do?", "How much have you raised?"]})
    results = []
    for name, text in (("model-alpha", "first"), ("model-beta", "second")):
        answers = [{"run": 0, "question_index": q, "question": "", "text": f"answer of {text} to {q}", "error": None,
                    "ttft_s": 0.1, "total_s": 1.0, "completion_tokens": 10, "tokens_per_s": 10.0} for q in range(2)]
        results.append({"name": name, "status": "ok", "error": None, "preset": "sampling", "load_s": 1.0,
                        "memory_after_load_mib": 10.0, "memory_peak_mib": 12.0, "total_s": 3.0, "failures": 0,
                        "answers": answers, "summary": summarize(answers)})
    contexts = [{"passages": [], "answerable": True}] * 2
    return build_report(script, [r["name"] for r in results], CompareOptions(), 1, contexts, results,
                        {"device": "cpu", "memory_label": "RSS"}, total_s=6.0)


REPORT = _report()


def test_blind_votes_rate_the_models(compare_app, owner_client):
    client, deck_id = owner_client
    with compare_app.app_context():
        run = comparisons.create_run(db.session.get(Deck, deck_id), REPORT["model_names"], "example", {"runs": 1})
        comparisons.finish_run(run.id, report=json.loads(json.dumps(REPORT)))
        run_id = run.id
    for _ in range(2):
        page = client.get(f"/decks/{deck_id}/compare/{run_id}/vote").data.decode()
        assert "model-alpha" not in page and "model-beta" not in page  # blind
        ballot_id = int(re.search(r"/vote/(\d+)", page).group(1))
        left = re.search(r'data-testid="vote-left">([^<]*)<', page).group(1)
        winner = "left" if "first" in left else "right"  # always prefer model-alpha's answer
        response = client.post(f"/decks/{deck_id}/compare/{run_id}/vote/{ballot_id}", data={"winner": winner})
        assert response.status_code == 303
    assert b"no more pairs" in client.get(f"/decks/{deck_id}/compare/{run_id}/vote", follow_redirects=True).data
    with compare_app.app_context():
        votes = db.session.query(ComparisonVote).all()
        assert sorted(v.question_index for v in votes) == [0, 1] and all(v.winner for v in votes)
        ratings = comparisons.ratings(db.session.get(ComparisonRun, run_id))
    assert [r["model"] for r in ratings] == ["model-alpha", "model-beta"]
    assert ratings[0]["wins"] == 2 and ratings[1]["losses"] == 2 and ratings[0]["low"] <= ratings[0]["rating"]
    html = client.get(f"/decks/{deck_id}/compare/{run_id}").data.decode()
    assert html.count('data-testid="compare-rating-row"') == 2 and "2 votes" in html


def test_ratings_uncertainty_shrinks_with_more_votes():
    few = comparisons.rate(["a", "b"], [("a", "b", 1.0), ("a", "b", 0.0), ("a", "b", 1.0)])
    many = comparisons.rate(["a", "b"], [("a", "b", 1.0), ("a", "b", 0.0), ("a", "b", 1.0)] * 20)
    width = lambda rows: rows[0]["high"] - rows[0]["low"]  # noqa: E731
    assert few[0]["model"] == many[0]["model"] == "a"
    assert width(many) < width(few)
    one = comparisons.rate(["a", "b"], [("a", "b", 1.0)])
    assert one[0]["high"] - one[0]["low"] > 300  # one vote says little
    unbeaten = comparisons.bradley_terry(["a", "b"], [("a", "b", 1.0)] * 10)
    assert 1000 < unbeaten["a"] < 2000 and unbeaten["b"] < 1000  # finite thanks to the virtual games
    ties = comparisons.bradley_terry(["a", "b"], [("a", "b", 0.5)] * 4)
    assert abs(ties["a"] - ties["b"]) < 1e-6


def test_deleting_the_deck_removes_its_comparisons(compare_app, owner_client):
    client, deck_id = owner_client
    with compare_app.app_context():
        run = comparisons.create_run(db.session.get(Deck, deck_id), REPORT["model_names"], "example", {"runs": 1})
        comparisons.finish_run(run.id, report=REPORT)
        comparisons.ballot(run)
    assert client.post(f"/decks/{deck_id}/delete").status_code == 303
    with compare_app.app_context():
        assert db.session.query(ComparisonRun).count() == db.session.query(ComparisonVote).count() == 0


def test_cli_compare_with_a_deck_and_replay(compare_app, owner_client, tiny_pair, tmp_path):
    from deckchat.cli import main as cli_main

    _, deck_id = owner_client
    runner = compare_app.test_cli_runner()
    result = runner.invoke(cli_main, ["compare", "--models", tiny_pair[0], "--deck", str(deck_id), "--replay",
                                      "--out", str(tmp_path), "--json"])
    assert result.exit_code == 1 and "nobody has asked" in result.stderr
    result = runner.invoke(cli_main, ["compare", "--models", f"{tiny_pair[0]},/no/such/model", "--deck",
                                      str(deck_id), "--runs", "1", "--max-new-tokens", "4", "--out", str(tmp_path),
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [m["status"] for m in summary["models"]] == ["ok", "failed"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["script"]["deck"] == deck_id and len(report["models"][0]["answers"]) == 4
    assert "[8/8] finished 2 models" in result.stderr  # progress
