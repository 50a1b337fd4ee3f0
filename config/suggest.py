"""'Did you mean …?' for misspelt keys, system names, entities and fields."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    options = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in options}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, word: str, choices: Iterable[str]) -> str:
    """``unknown system 'zoh'; did you mean 'zoho'?`` — or the list of choices when nothing is close."""
    options = sorted(c for c in choices if isinstance(c, str))
    hint = did_you_mean(word, options)
    if not hint:
        hint = f" (defined: {', '.join(options)})" if options else " (none defined)"
    return f"unknown {kind} {word!r}{hint}"
