"""Server-sent event streams, split into their `data:` payloads."""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")


def iter_events(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset in `raw` just past the event, data) of each `data:` event of an SSE stream."""
    events = []
    position = 0
    for match in _EVENT_END.finditer(raw):
        block = raw[position : match.start()]
        data = [line[5:].lstrip() for line in _LINE_END.split(block) if line.startswith(b"data:")]
        if data:
            events.append((match.end(), b"\n".join(data)))
        position = match.end()
    return events
