"""One strict YAML reader for every file fink-t2 reads (stream/cuts configuration, model metadata).

``yaml.safe_load`` builds no Python objects, but it still expands aliases (a
few hundred bytes of ``&a [*a, *a, ...]`` become millions of nodes, and an error
message quoting them megabytes) and silently keeps the last of two equal keys.
Neither has a use in a configuration or metadata file, so both are refused,
with the line of the offending node.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

#: Largest YAML file read (configuration and metadata files are a few kB).
MAX_BYTES = 1 << 20


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, f"YAML aliases (*{event.anchor}) are not allowed here",
                                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the constructor reports it
                break
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {str(key)[:60]!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def strict_load(text: str):
    """The single YAML document in ``text`` (safe types only, no aliases, no duplicate keys)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_text(path: str | Path) -> str:
    """``path``'s text, refusing files larger than :data:`MAX_BYTES` (read with a bound, so /dev/zero ends)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_BYTES + 1)
    if len(text) > MAX_BYTES:
        raise ValueError(f"{path} is larger than {MAX_BYTES} bytes: not a configuration file")
    return text


def short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(error: Exception, limit: int = 300) -> str:
    """A YAML error on one line, at most ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
