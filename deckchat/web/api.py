"""JSON endpoints: visible-time reports from the viewer (anonymous, rate limited)."""
from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from ..domain import tracking
from ..extensions import csrf, limiter

bp = Blueprint("api", __name__, url_prefix="/api")
REPORT_MAX_BYTES = 4096  # a report is under 200 bytes


def _track_limit() -> str:
    return current_app.config["TRACK_RATE_LIMIT"]


@bp.route("/track", methods=["POST"])
@csrf.exempt  # sendBeacon cannot send a CSRF header; the unguessable visit key authorises the report
@limiter.limit(_track_limit)
def track():
    """Store one visible-time report: {"visit", "view", "slide", "visible_ms"}."""
    if request.content_length is not None and request.content_length > REPORT_MAX_BYTES:
        return jsonify(error="too large"), 413
    # A chunked body has no length up front: read one byte past the limit, never the whole of it.
    raw = request.stream.read(REPORT_MAX_BYTES + 1)
    if len(raw) > REPORT_MAX_BYTES:
        return jsonify(error="too large"), 413
    try:
        # sendBeacon posts text/plain; parse the body whatever its declared type.
        data = json.loads(raw.decode("utf-8") or "null")
        report = tracking.parse_report(data)
        stored = tracking.record_view(report, current_app.config["MAX_VIEW_SECONDS"])
    except tracking.UnknownVisitError as exc:
        return jsonify(error=str(exc)), 404
    except tracking.LinkGoneError as exc:
        return jsonify(error=str(exc)), 410
    except RecursionError:  # nested deeper than the parser goes
        return jsonify(error="malformed report"), 400
    except (ValueError, tracking.TrackingError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        return jsonify(error=str(exc)), 400
    return jsonify(ok=True, visible_ms=stored)
