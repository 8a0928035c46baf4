"""Owner A cannot see or change owner B's decks, links or analytics, on any owner route."""
from __future__ import annotations

from clients import login
from deckchat.domain import sharing
from deckchat.domain.accounts import create_user
from deckchat.extensions import db
from deckchat.models import Deck, ShareLink


def _fill(rule, deck_id: int, link_id: int) -> str:
    # Ids of rows under the deck: any id works, the deck check must refuse first.
    values = {"deck_id": deck_id, "link_id": link_id, "number": 1, "item_id": 1, "visit_id": 1}
    path = rule.rule
    for arg in rule.arguments:
        value = str(values.get(arg, 1))
        path = path.replace(f"<int:{arg}>", value).replace(f"<{arg}>", value)
    return path


def test_every_owner_route_hides_other_owners_decks(app, pitch_deck):
    with app.app_context():
        link = sharing.create_link(db.session.get(Deck, pitch_deck))
        link_id, token = link.id, link.token
        create_user("intruder@example.com", "password123")
    client = app.test_client()
    login(client, "intruder@example.com")
    owner_rules = [r for r in app.url_map.iter_rules() if "deck_id" in r.arguments]
    assert len(owner_rules) >= 8, [r.rule for r in owner_rules]  # the walk must cover the owner area
    for rule in owner_rules:
        path = _fill(rule, pitch_deck, link_id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, data={"label": "x", "expires_in": ""})
            assert response.status_code == 404, (method, path, response.status_code)
            assert b"Acme" not in response.data
    with app.app_context():
        link = db.session.get(ShareLink, link_id)
        assert link.revoked_at is None and db.session.get(Deck, pitch_deck) is not None
        assert db.session.query(ShareLink).count() == 1
    assert b"Acme" not in client.get("/decks/").data
    assert app.test_client().get(f"/s/{token}").status_code == 200  # the link still works for investors


def test_a_link_of_one_deck_cannot_be_revoked_through_another(app, pitch_deck, pitch_files):
    from deckchat.domain.decks import ImportLimits, import_deck
    from deckchat.models import User

    with app.app_context():
        owner = db.session.scalar(db.select(User))
        other, _ = import_deck(owner=owner, instance_path=app.instance_path, slides_path=pitch_files["pdf"],
                               filename="second.pdf", limits=ImportLimits.from_config(app.config))
        link_id = sharing.create_link(db.session.get(Deck, pitch_deck)).id
        other_id = other.id
    client = app.test_client()
    login(client)
    assert client.post(f"/decks/{other_id}/links/{link_id}/revoke").status_code == 404
    with app.app_context():
        assert db.session.get(ShareLink, link_id).revoked_at is None


def test_owner_routes_require_login(app, pitch_deck):
    client = app.test_client()
    for path in ("/decks/", f"/decks/{pitch_deck}", f"/decks/{pitch_deck}/analytics", "/decks/new"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location
    assert client.get(f"/api/decks/{pitch_deck}/analytics").status_code == 401


def test_deleting_a_deck_removes_files_links_and_visits(app, pitch_deck):
    from pathlib import Path

    from deckchat.models import Slide, Visit

    with app.app_context():
        deck = db.session.get(Deck, pitch_deck)
        folder = Path(app.instance_path) / "decks" / deck.storage_key
        token = sharing.create_link(deck).token
    investor = app.test_client()
    investor.get(f"/s/{token}")
    client = app.test_client()
    login(client)
    assert client.post(f"/decks/{pitch_deck}/delete").status_code == 303
    assert not folder.exists()
    with app.app_context():
        for model in (Deck, Slide, ShareLink, Visit):
            assert db.session.query(model).count() == 0, model
    assert investor.get(f"/s/{token}").status_code == 404
