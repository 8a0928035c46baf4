"""Bounded fuzzing (hypothesis) of the upload parsers and the tracking endpoint: no 500s, no stray errors."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deckchat.domain import sharing
from deckchat.domain.decks import ImportLimits, import_deck
from deckchat.domain.ingest import UploadError
from deckchat.extensions import db
from deckchat.models import Deck, User
from factories import PITCH_PAGES, make_pdf, make_pptx

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
VALID_PDF = make_pdf(PITCH_PAGES[:2])
VALID_PPTX = make_pptx([("Title", "Body", "Notes")])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def track_target(app, pitch_deck):
    client = app.test_client()
    with app.app_context():
        token = sharing.create_link(db.session.get(Deck, pitch_deck)).token
    visit = re.search(rb'data-visit="([^"]+)"', client.get(f"/s/{token}").data).group(1).decode()
    return client, visit


@FUZZ
@given(body=st.fixed_dictionaries({}, optional={"visit": json_values, "view": json_values, "slide": json_values,
                                                "visible_ms": json_values}), raw=st.binary(max_size=200),
       use_raw=st.booleans(), real_visit=st.booleans())
def test_tracking_endpoint_never_fails(track_target, body, raw, use_raw, real_visit):
    client, visit = track_target
    if real_visit:
        body = {**body, "visit": visit}
    data = raw if use_raw else json.dumps(body, allow_nan=True).encode()
    response = client.post("/api/track", data=data, content_type="text/plain")
    assert response.status_code in (200, 400, 404, 413), (response.status_code, data)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf)


@FUZZ
@given(base=st.sampled_from(["pdf", "pptx", "random"]), edits=st.lists(st.tuples(st.integers(0, 10**6),
                                                                                  st.integers(0, 255)), max_size=8),
       cut=st.integers(0, 100), noise=st.binary(min_size=1, max_size=300))
@example(base="pdf", edits=[(82, 0)], cut=0, noise=b"\x00")      # a page object pdfium cannot load
@example(base="pptx", edits=[(49, 0)], cut=0, noise=b"\x00")     # a damaged deflate stream inside the zip
def test_upload_parsers_fail_cleanly(app, owner, base, edits, cut, noise):
    data = {"pdf": VALID_PDF, "pptx": VALID_PPTX, "random": noise}[base]
    data = _mutate(data, edits)
    if cut:
        data = data[: max(1, len(data) * cut // 100)]
    with app.app_context():
        before = db.session.query(Deck).count()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload.bin"
            path.write_bytes(data)
            try:
                import_deck(owner=db.session.get(User, owner), instance_path=app.instance_path, slides_path=path,
                            filename="upload.bin", limits=ImportLimits.from_config(app.config))
            except UploadError:
                assert db.session.query(Deck).count() == before  # a refused file leaves no rows
            else:
                assert db.session.query(Deck).count() == before + 1
    staging = [p for p in (Path(app.instance_path) / "decks").glob(".staging-*")]
    assert staging == []
