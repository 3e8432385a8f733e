"""Generated run names: a leaf module, so every domain can name runs without importing another.

coolname is imported at the first name drawn, not at start: its word lists cost ~15 ms and
~2 MiB.
"""

from __future__ import annotations

#: Words a generated run name must not contain, so a random name never offends.
_NAME_DENY_LIST = frozenset({"sexy", "demonic", "fat", "unkempt", "nippy", "nasty"})


def generate_run_name() -> str:
    """A two-word ``adjective-animal`` slug, re-drawn if it contains a denied word."""
    import coolname  # costly third-party module, loaded on first use (tests/test_startup.py)

    while True:
        words = coolname.generate(2)
        if not _NAME_DENY_LIST.intersection(words):
            return "-".join(words)
