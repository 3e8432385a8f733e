"""Prefect's small text-search language, used by the log and event filters.

- words separated by spaces: any of them may match (OR);
- ``-word`` or ``!word``: must not match; ``+word``: must match;
- ``"a phrase"`` is one term (``\\"`` and ``\\\\`` escape inside it); an unclosed quote runs to
  the end; a ``-``, ``!`` or ``+`` followed by a space is ignored;
- matching is case-insensitive and by substring.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ParsedQuery:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)

    def matches(self, text: str) -> bool:
        """Whether ``text`` satisfies the query (in memory, for live streams)."""
        lowered = text.lower()
        if self.include and not any(term.lower() in lowered for term in self.include):
            return False
        if any(term.lower() in lowered for term in self.exclude):
            return False
        return all(term.lower() in lowered for term in self.required)


def parse(query: str) -> ParsedQuery:
    result = ParsedQuery()
    position, length = 0, len(query)
    while position < length:
        char = query[position]
        if char.isspace():
            position += 1
            continue
        kind = "include"
        if char in "-!+":
            if position + 1 >= length or query[position + 1].isspace():
                position += 1  # a lone sign means nothing
                continue
            kind = "required" if char == "+" else "exclude"
            position += 1
        if query[position] == '"':
            term, position = _phrase(query, position + 1)
        else:
            start = position
            while position < length and not query[position].isspace() and query[position] != '"':
                position += 1
            term = query[start:position]
        if term.strip():
            getattr(result, kind).append(term)
    return result


def _phrase(query: str, position: int) -> tuple[str, int]:
    """The quoted phrase starting at ``position`` (unescaped) and where reading resumes."""
    out: list[str] = []
    while position < len(query):
        char = query[position]
        if char == "\\" and position + 1 < len(query) and query[position + 1] in '"\\':
            out.append(query[position + 1])
            position += 2
        elif char == '"':
            return "".join(out), position + 1
        else:
            out.append(char)
            position += 1
    return "".join(out), position
