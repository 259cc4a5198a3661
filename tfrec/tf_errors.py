"""TensorFlow's error text as one readable sentence.

An ``OpError`` raised by a graph carries a dump: ``Graph execution error:``, ``Detected at node X
defined at (most recent call last):`` plus a Python stack, the message itself, ``Hint:`` lines,
``[[{{node X}}]]`` and ``[Op:Name] name:`` trailers, a ``{{function_node ...}}`` prefix, and for
several failures ``N root error(s) found. (0) CODE: ...``. Servers answer with it and readers
report it, so it must stay one line that names what went wrong (the serving client matches words in
it: "user state", "fingerprint").
"""
from __future__ import annotations

import re

_ASSERTION = "assertion failed: ["
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_NODE = re.compile(r"\s*\[\[\{\{node [^}]*\}\}\]\]")
_OP = re.compile(r"\s*\[Op:[^\]]*\](\s*name:.*)?$")
_ROOT = re.compile(r"^\(0\)\s+[A-Z_]+:\s*(.*)$")
_NOISE = ("Detected at node", "File ", "Hint:", "Node:", "[[", "Graph execution error")


_QUOTED_VALUE = re.compile(r"(value: ')(.*)(')", re.S)  # a parse error quoting the raw record / request bytes


def _escape_quoted(match: re.Match) -> str:
    """Control characters of quoted raw bytes escaped, so a newline byte in a payload does not split
    the message (0x0a is the tag of protobuf field 1: any damaged Example has it)."""
    body = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in match.group(2))
    return match.group(1) + body + match.group(3)


def _unescape(text: str) -> str:
    return text.replace("\\'", "'").replace('\\"', '"')  # tf.debugging messages are C-escaped


def clean_tf_message(message: str, limit: int = 500) -> str:
    """The sentence in TensorFlow's error ``message``, at most ``limit`` characters (then "...").

    A failed ``tf.debugging`` check gives its own message (``assertion failed: [<message>] [...]``);
    several root errors give the first one; otherwise the last line that is not part of the dump,
    without the ``{{function_node}}`` prefix and the node / op trailers. Never the raw dump."""
    message = _QUOTED_VALUE.sub(_escape_quoted, message)
    if _ASSERTION in message:
        start = message.index(_ASSERTION) + len(_ASSERTION)
        line = message[start:].split("\n", 1)[0]
        end = line.find("] [")
        text = _unescape(line[:end] if end >= 0 else line.rstrip().removesuffix("]"))
    else:
        lines = [_FUNCTION_NODE.sub("", line).strip() for line in message.splitlines()]
        roots = [m.group(1) for m in map(_ROOT.match, lines) if m]
        if roots:
            lines = roots[:1]
        kept = []
        for line in lines:
            line = _OP.sub("", _NODE.sub("", line)).strip()
            if (line and not line.startswith(_NOISE) and not line.endswith("(most recent call last):")
                    and not re.fullmatch(r"\d+ root error\(s\) found\.|\d+ derived errors ignored\.", line)):
                kept.append(line)
        text = kept[-1] if kept else next((line for line in lines if line), "")
        text = _OP.sub("", _NODE.sub("", text)).strip() or "TensorFlow error without a message"
    return text if len(text) <= limit else text[:limit] + "..."
