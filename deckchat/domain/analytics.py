"""Per-deck engagement figures computed in the database."""
from __future__ import annotations

from sqlalchemy import distinct, func, select

from ..extensions import db
from ..models import Deck, SlideView, Visit


def deck_analytics(deck: Deck) -> dict:
    """Visits and, for every slide (zeros included), views, distinct visitors and visible seconds."""
    visits = db.session.scalar(select(func.count(Visit.id)).where(Visit.deck_id == deck.id)) or 0
    rows = db.session.execute(
        select(
            SlideView.slide,
            func.count(SlideView.id),
            func.count(distinct(Visit.visitor_id)),
            func.coalesce(func.sum(SlideView.visible_ms), 0),
        )
        .join(Visit, Visit.id == SlideView.visit_id)
        .where(SlideView.deck_id == deck.id)
        .group_by(SlideView.slide)
    ).all()
    by_slide = {r[0]: r for r in rows}
    slides = []
    for number in range(1, deck.slide_count + 1):
        r = by_slide.get(number)
        slides.append({
            "slide": number,
            "views": int(r[1]) if r else 0,
            "visitors": int(r[2]) if r else 0,
            "visible_seconds": round(int(r[3]) / 1000, 3) if r else 0.0,
        })
    return {"deck_id": deck.id, "visits": int(visits), "slides": slides}
