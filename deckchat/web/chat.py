"""The investor chat: streamed answers over Server-Sent Events, feedback, rate limits."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from ..domain import chatlog
from ..domain.decks import deck_content
from ..extensions import limiter
from ..ml.chain import ChatAnswer, ChatPlan, DeckChain
from ..ml.engine import EngineBusy, EngineError
from ..ml.prompts import PromptTooLong
from ..ml.runtime import EngineNotReady, get_runtime
from .viewer import accessible_link, owner_preview

log = logging.getLogger(__name__)
bp = Blueprint("chat", __name__, url_prefix="/s")

TOO_MANY_QUESTIONS = "Too many questions at once. Please wait a moment and ask again."
LINK_TOO_BUSY = "This link is getting too many questions right now. Please wait a moment and ask again."
TOO_MANY_CLICKS = "Too many requests at once. Please wait a moment and try again."
PASSAGE_CHARS = 600  # how much of a cited passage the answer's source carries


def _visitor_key() -> str:
    return f"visitor:{request.cookies.get('dc_visitor') or request.remote_addr}"


def _address_key() -> str:
    # The visitor cookie is the browser's to choose: a new one on every request must still meet a limit.
    return f"address:{request.remote_addr}"


def _address_limit() -> str:
    return current_app.config["CHAT_RATE_LIMIT_ADDRESS"]


def _json_object() -> dict | None:
    """The request's JSON body when it is an object; None for anything else."""
    body = request.get_json(silent=True)
    if body is None:
        return {}
    return body if isinstance(body, dict) else None


def _link_key() -> str:
    return f"link:{(request.view_args or {}).get('token')}"


def _visitor_limit() -> str:
    return current_app.config["CHAT_RATE_LIMIT_VISITOR"]


def _link_limit() -> str:
    return current_app.config["CHAT_RATE_LIMIT_LINK"]


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def make_chain() -> DeckChain:
    """A chain on this process's engine (503 upstream while the model loads)."""
    engine, profile = get_runtime(current_app).get()
    return DeckChain(engine, profile, Path(current_app.instance_path) / "indexes",
                     embed_model=current_app.config["EMBED_MODEL"] or None)


@bp.route("/<token>/chat", methods=["POST"])
@limiter.limit(_visitor_limit, key_func=_visitor_key, error_message=TOO_MANY_QUESTIONS)
@limiter.limit(_address_limit, key_func=_address_key, error_message=TOO_MANY_QUESTIONS)
@limiter.limit(_link_limit, key_func=_link_key, error_message=LINK_TOO_BUSY)
def ask(token: str):
    """Answer a question about the deck as a stream: `delta` events, then `done` (or `error`)."""
    link = accessible_link(token)
    body = _json_object()
    if body is None:
        return jsonify(error="The request body must be a JSON object."), 400
    visit = chatlog.visit_for_link(link, body.get("visit"))
    preview = visit is None and owner_preview(link)  # the presenter trying their own link: answered, not logged
    if visit is None and not preview:
        return jsonify(error="Reload the page to start a new visit."), 400
    try:
        question = chatlog.clean_question(body.get("question"))
    except chatlog.ChatInputError as exc:
        return jsonify(error=str(exc)), 400
    slide = body.get("slide")
    slide = slide if isinstance(slide, int) and not isinstance(slide, bool) and 1 <= slide <= link.deck.slide_count else None
    deck = link.deck
    try:
        chain = make_chain()
        history = [] if preview else chatlog.visit_history(visit.id)
        plan = chain.plan(deck_content(deck.id), question, slide=slide, history=history,
                          persona=deck.persona, guardrails=chatlog.guardrail_pairs(deck))
        holder: dict = {}
        deltas = chain.stream(plan, holder)
        first = next(deltas, "")  # submit now, so a full queue is a 503 rather than a broken stream
    except (EngineBusy, EngineNotReady) as exc:
        wait = int(exc.retry_after)
        unit = "second" if wait == 1 else "seconds"
        message = (f"The assistant is starting up; try again in {wait} {unit}." if isinstance(exc, EngineNotReady)
                   else f"The assistant is busy; try again in {wait} {unit}.")
        response = jsonify(error=message, status=503, retry_after=wait)
        response.status_code, response.headers["Retry-After"] = 503, str(wait)
        return response
    except PromptTooLong as exc:
        return jsonify(error=str(exc)), 400
    except Exception as exc:  # noqa: BLE001 - the index missing or stale, the engine dead: say so, keep the viewer
        log.exception("chat failed before streaming for deck %s", deck.id)
        return jsonify(error=_friendly(exc)), 503
    ids = {"deck": deck.id, "visit": None if preview else visit.id}

    def events():
        text_so_far = [first] if first else []
        error = None
        try:
            if first:
                yield _sse("delta", {"text": first})
            for delta in deltas:
                text_so_far.append(delta)
                yield _sse("delta", {"text": delta})
        except EngineError as exc:
            error = str(exc)
        except GeneratorExit:
            deltas.close()  # the investor went away: cancel generation, keep what was said
            error = "cancelled"
            raise
        finally:
            answer: ChatAnswer | None = holder.get("answer")
            if answer is None:
                answer = ChatAnswer("".join(text_so_far), "error", plan.answerable, plan.sources, "", "", None,
                                    0.0, None, None, error or "error")
            cited = with_passages(answer.sources, plan)  # stored too: a reload shows the turn as it was
            exchange = None if ids["visit"] is None else chatlog.record_exchange(
                deck_id=ids["deck"], visit_id=ids["visit"], slide=slide, question=question, answer=answer,
                sources=cited)
        exchange_id = exchange.id if exchange else None  # None: a preview answer, nothing stored to rate
        if error:
            yield _sse("error", {"message": f"The answer was interrupted: {error}", "exchange": exchange_id})
        else:
            yield _sse("done", {"exchange": exchange_id, "kind": answer.kind, "answerable": answer.answerable,
                                "sources": cited, "text": answer.text})

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass the stream through unbuffered
    return response


def _clip(text: str, limit: int = PASSAGE_CHARS) -> str:
    """A passage cut to about `limit` characters, at a word boundary, with an ellipsis when cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.7 else cut).rstrip(" ,;:.-") + "…"


def with_passages(sources: list[dict], plan: ChatPlan) -> list[dict]:
    """The answer's sources for the browser, each with the text the answer used (`passage`, plain text,
    at most ~600 characters; the page renders it as text), as stored with the exchange too (new dicts; the
    plan's own sources are left as they are)."""
    texts = {source: text for source, text, _score in plan.passages}
    out = []
    for source in sources:
        name = source.get("source", "")
        passage = texts.get(name)
        if passage is None and plan.kind == "faq" and name.startswith("faq:"):
            passage = plan.fixed_answer  # the FAQ's own answer is the passage
        out.append({**source, "passage": _clip(passage) if passage else None})
    return out


def _friendly(exc: Exception) -> str:
    """A message an investor can act on, without internals."""
    name = type(exc).__name__
    if name in ("IndexMissingError", "StaleIndexError"):
        return "The assistant for this deck is being prepared; please ask again in a minute."
    if isinstance(exc, EngineError):
        return f"The assistant is unavailable right now ({exc})."
    return "The assistant could not answer right now; please try again."


@bp.route("/<token>/chat/<int:exchange_id>/feedback", methods=["POST"])
@limiter.limit(_visitor_limit, key_func=_visitor_key, error_message=TOO_MANY_CLICKS)
@limiter.limit(_address_limit, key_func=_address_key, error_message=TOO_MANY_CLICKS)
def feedback(token: str, exchange_id: int):
    """Thumbs up or down on an answer of this visit."""
    link = accessible_link(token)
    body = _json_object()
    if body is None:
        return jsonify(error="The request body must be a JSON object."), 400
    visit = chatlog.visit_for_link(link, body.get("visit"))
    if visit is None:
        return jsonify(error="unknown visit"), 400
    try:
        chatlog.set_feedback(exchange_id, visit, body.get("value"))
    except chatlog.ChatInputError as exc:
        return jsonify(error=str(exc)), 400
    except LookupError:
        return jsonify(error="no such answer"), 404
    return jsonify(ok=True)
