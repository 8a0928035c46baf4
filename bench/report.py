"""What every benchmark does with its result: print the JSON and, when asked, store it."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: str | Path | None, indent: int = 1) -> None:
    """Print the result as JSON and write it to `out` (folders made as needed) when one is given."""
    text = json.dumps(result, indent=indent)
    print(text, flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
