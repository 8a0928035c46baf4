"""Incremental text for token streams: detokenization, stop strings and the classic space cleanup."""

from __future__ import annotations

# The cleanup transformers v4 applied to decoded text ("clean_up_tokenization_spaces"). Each pattern starts
# with a space, and TextAssembler holds trailing spaces back, so streamed and final text agree.
_CLEANUPS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def clean_up_spaces(text: str) -> str:
    """Remove the spaces a word-level tokenizer leaves before punctuation and contractions."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text


class TextAssembler:
    """Turns one sequence's generated ids into text deltas, cutting at stop strings.

    Incremental detokenization as in TGI/vLLM: only a short window of ids is decoded per token, and text
    is held back while it ends in an incomplete character, in whitespace, or in the start of a stop string,
    so that the concatenated deltas always equal the final text.
    """

    def __init__(self, tokenizer=None, stop: tuple[str, ...] | list[str] = (), clean_up: bool = False):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.clean_up = clean_up
        self.ids: list[int] = []
        self._raw = ""  # decoded completion so far
        self._prefix = 0  # ids[_prefix:_read] were decoded into the tail of _raw already
        self._read = 0
        self.sent = ""  # text handed out as deltas
        self.stopped = False
        self._backend = getattr(tokenizer, "backend_tokenizer", None)

    def _decode(self, ids: list[int]) -> str:
        if self._backend is not None:  # the Rust tokenizer directly: the Python wrapper costs more than it
            return self._backend.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, token_id: int) -> str:
        """Append one generated id; return the text that became safe to show (maybe empty)."""
        if self.stopped:
            return ""
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._raw += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)
        return self._emit(final=False)

    def add_text(self, text: str) -> str:
        """Append already-decoded text (remote engines); return the text that became safe to show."""
        if self.stopped:
            return ""
        self._raw += text
        return self._emit(final=False)

    def finish(self, cut_stop_prefix: bool = False) -> str:
        """Flush what was held back at the end of generation.

        `cut_stop_prefix` drops a held-back start of a stop string: a server that applied the stop itself
        streamed that start before it saw the rest of the stop string, then ended.
        """
        return self._emit(final=not cut_stop_prefix)

    def _emit(self, final: bool) -> str:
        text = self._raw.lstrip()
        if self.clean_up:
            text = clean_up_spaces(text)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, self.stopped, final = text[:cut], True, True
        safe = text.rstrip()
        if not final:
            for s in self.stop:  # hold back a tail that may grow into a stop string
                for n in range(min(len(s) - 1, len(safe)), 0, -1):
                    if safe.endswith(s[:n]):
                        safe = safe[:-n].rstrip()
                        break
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent) :], safe
        return delta
