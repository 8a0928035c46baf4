"""The comparison page without model weights on the machine: random weights by default, real ones refused
up front with the model named, and no blind vote for a single model."""
from __future__ import annotations

import json
import re

import pytest
from clients import login

from deckchat.domain import comparisons
from deckchat.extensions import db
from deckchat.ml import runtime
from deckchat.models import ComparisonRun, Deck


@pytest.fixture
def owner_client(app, owner_deck_factory):
    _, deck_id = owner_deck_factory(app)
    client = app.test_client()
    login(client)
    return client, deck_id


def _selected_load_format(page: str) -> str:
    select = re.search(r'<select[^>]*name="load_format".*?</select>', page, re.S).group(0)
    return re.search(r'<option selected value="(\w+)"', select).group(1)


def test_without_any_local_weights_random_weights_are_the_default(owner_client, monkeypatch):
    monkeypatch.setattr(runtime, "weights_available", lambda name: False)
    client, deck_id = owner_client
    page = client.get(f"/decks/{deck_id}/compare").data.decode()
    assert _selected_load_format(page) == "dummy"
    assert 'data-testid="compare-no-weights"' in page and "not answer quality" in page
    assert 'data-weights="0"' in page and 'data-weights="1"' not in page


def test_with_local_weights_real_weights_stay_the_default(owner_client, monkeypatch):
    monkeypatch.setattr(runtime, "weights_available", lambda name: name == "qwen2.5-0.5b-instruct")
    client, deck_id = owner_client
    page = client.get(f"/decks/{deck_id}/compare").data.decode()
    assert _selected_load_format(page) == "auto" and 'data-testid="compare-no-weights"' not in page
    assert re.search(r'data-weights="1"[^>]*value="qwen2.5-0.5b-instruct"|value="qwen2.5-0.5b-instruct"[^>]*data-weights="1"', page)


def test_real_weights_of_a_missing_model_are_refused_before_any_job(app, owner_client, monkeypatch):
    monkeypatch.setattr(runtime, "weights_available", lambda name: name == "qwen2.5-0.5b-instruct")
    started = []
    from deckchat.web import compare_job

    monkeypatch.setattr(compare_job, "start", lambda *a: started.append(a) or True)
    client, deck_id = owner_client
    response = client.post(f"/decks/{deck_id}/compare", data={
        "models": ["qwen2.5-0.5b-instruct", "gpt2-xl"], "source": "example", "runs": 1, "load_format": "auto"}, follow_redirects=True)
    page = response.data.decode()
    assert "Real weights of gpt2-xl are not on this machine" in page and "Random weights" in page
    assert started == []
    with app.app_context():
        assert db.session.query(ComparisonRun).count() == 0
    # The same models with random weights start.
    response = client.post(f"/decks/{deck_id}/compare", data={
        "models": ["qwen2.5-0.5b-instruct", "gpt2-xl"], "source": "example", "runs": 1, "load_format": "dummy"})
    assert response.status_code == 303 and "/compare/" in response.location and len(started) == 1


def _report(names: list[str]) -> dict:
    from deckchat.ml.compare import CompareOptions, summarize
    from deckchat.ml.compare_report import build_report
    from deckchat.ml.compare_script import parse_script

    script = parse_script({"questions": ["What do you do?"]})
    results = []
    for name in names:
        answers = [{"run": 0, "question_index": 0, "question": "", "text": f"answer of {name}", "error": None,
                    "ttft_s": 0.1, "total_s": 1.0, "completion_tokens": 10, "tokens_per_s": 10.0}]
        results.append({"name": name, "status": "ok", "error": None, "preset": "sampling", "load_s": 1.0,
                        "memory_after_load_mib": 10.0, "memory_peak_mib": 12.0, "total_s": 3.0, "failures": 0,
                        "answers": answers, "summary": summarize(answers)})
    return build_report(script, names, CompareOptions(load_format="dummy"), 1, [{"passages": [], "answerable": True}],
                        results, {"device": "cpu", "memory_label": "RSS"}, total_s=3.0)


def _finished(app, deck_id: int, names: list[str]) -> int:
    with app.app_context():
        run = comparisons.create_run(db.session.get(Deck, deck_id), names, "example",
                                     {"runs": 1, "load_format": "dummy"})
        comparisons.finish_run(run.id, report=json.loads(json.dumps(_report(names))))
        return run.id


def test_one_model_offers_no_blind_vote_and_says_why(app, owner_client):
    client, deck_id = owner_client
    run_id = _finished(app, deck_id, ["solo-model"])
    page = client.get(f"/decks/{deck_id}/compare/{run_id}").data.decode()
    assert 'data-testid="compare-vote-link"' not in page and ">Vote blind<" not in page
    assert 'data-testid="compare-no-vote"' in page and "ran only one" in page
    assert 'data-testid="compare-dummy-note"' in page  # random weights: said plainly on the results
    assert 'class="table-scroll"' in page  # the wide table scrolls inside its card
    response = client.get(f"/decks/{deck_id}/compare/{run_id}/vote", follow_redirects=True)
    assert b"this comparison ran only one" in response.data


def test_two_models_still_offer_the_blind_vote(app, owner_client):
    client, deck_id = owner_client
    run_id = _finished(app, deck_id, ["model-a", "model-b"])
    page = client.get(f"/decks/{deck_id}/compare/{run_id}").data.decode()
    assert 'data-testid="compare-vote-link"' in page and 'data-testid="compare-no-vote"' not in page
