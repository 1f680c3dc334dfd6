"""Xen's xl.cfg format (`KEY = VALUE` lines; quoted strings, numbers, `[ ... ]` lists,
`#` comments), parsed and written so that an untouched file writes back byte for byte.

libvirt's xen-xl native conversion needs a Xen host, so this is ours. Each setting keeps its
source text; only a setting whose value is changed is written anew, keeping its key, spacing
and trailing comment. Converting files to and from our VMs is `xlconvert`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from cloudctl.errors import InvalidInput

Scalar = str | int
Value = str | int | list[Scalar]

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>(?:0[xX][0-9a-fA-F]+|[0-9]+)(?![A-Za-z0-9_.]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[=\[\],;])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_ESCAPE = re.compile(r"\\(.)")


@dataclass
class Token:
    kind: str
    text: str
    start: int
    line: int


@dataclass
class Setting:
    """One `key = value` statement: its value and the text around it in the file."""

    key: str
    value: Value
    line: int
    head: str  # from the statement's start through '=' and the spaces after it
    value_text: str
    tail: str  # after the value: ';', spaces, a comment, the line end

    @property
    def text(self) -> str:
        return self.head + self.value_text + self.tail


@dataclass
class XlConfig:
    """An xl.cfg file: settings and, between them, comments and blank lines kept verbatim."""

    chunks: list[str | Setting] = field(default_factory=list)

    def settings(self) -> Iterator[Setting]:
        return (c for c in self.chunks if isinstance(c, Setting))

    def setting(self, key: str) -> Setting | None:
        """The last `key = ...` (xl lets a later one override an earlier one)."""
        found = None
        for setting in self.settings():
            if setting.key == key:
                found = setting
        return found

    def get(self, key: str, default: Value | None = None) -> Value | None:
        setting = self.setting(key)
        return default if setting is None else setting.value

    def __contains__(self, key: str) -> bool:
        return self.setting(key) is not None

    def __setitem__(self, key: str, value: Value) -> None:
        """Change a setting in place (its layout kept), or append `key = value`."""
        setting = self.setting(key)
        if setting is None:
            if self.chunks and not self.text().endswith("\n"):
                self.chunks.append("\n")
            setting = Setting(key, value, 0, f"{key} = ", "", "\n")
            self.chunks.append(setting)
        setting.value = value
        setting.value_text = render_value(value)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.chunks)


# -- writing -----------------------------------------------------------------------------------

def quote(text: str, mark: str = '"') -> str:
    escaped = text.replace("\\", "\\\\").replace(mark, "\\" + mark)
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f"{mark}{escaped}{mark}"


def render_value(value: Value) -> str:
    """A value as xl.cfg files usually spell it: "string", 42, [ 'item', 'item' ]."""
    if isinstance(value, bool):
        return str(int(value))  # xl has no booleans; 0 and 1 stand for them
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    items = [str(item) if isinstance(item, int) else quote(item, "'") for item in value]
    return f"[ {', '.join(items)} ]" if items else "[ ]"


def write(config: XlConfig) -> str:
    return config.text()


# -- parsing -----------------------------------------------------------------------------------

def _tokens(text: str, source: str) -> list[Token]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            what = "unterminated string" if char in "\"'" else f"unexpected character {char!r}"
            raise InvalidInput(f"{source}: line {line}: {what}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos, line))
        line += kind == "newline"
        pos = match.end()
    return tokens


def _scalar(token: Token) -> Scalar:
    if token.kind == "number":
        return int(token.text, 0)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), token.text[1:-1])


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source
        self.tokens = _tokens(text, source)
        self.pos = 0

    def fail(self, message: str, token: Token | None = None) -> InvalidInput:
        token = token or self.peek()
        line = token.line if token else self.text.count("\n") + 1
        return InvalidInput(f"{self.source}: line {line}: {message}")

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end of file")
        self.pos += 1
        return token

    def config(self) -> XlConfig:
        config, done = XlConfig(), 0  # `done`: where the text not yet in a chunk begins
        while (token := self.peek()) is not None:
            if token.kind in ("newline", "comment"):
                self.pos += 1
                continue
            if token.kind != "name":
                raise self.fail(f"expected a setting name, found {token.text!r}")
            # A statement owns its line from the line's start (or a previous statement's end).
            start = max(done, self.text.rfind("\n", 0, token.start) + 1)
            if start > done:
                config.chunks.append(self.text[done:start])
            config.chunks.append(self.setting(start))
            done = start + len(config.chunks[-1].text)  # type: ignore[union-attr]
        if done < len(self.text):
            config.chunks.append(self.text[done:])
        return config

    def setting(self, start: int) -> Setting:
        name = self.take()
        equals = self.take()
        if equals.text != "=":
            raise self.fail(f"expected '=' after {name.text}", equals)
        first = self.peek()
        if first is None or first.kind in ("newline", "comment"):
            raise self.fail(f"{name.text} has no value", equals)
        value = self.value()
        value_end = self.tokens[self.pos - 1].start + len(self.tokens[self.pos - 1].text)
        end = self.statement_end(name)
        return Setting(name.text, value, name.line, self.text[start:first.start],
                       self.text[first.start:value_end], self.text[value_end:end])

    def statement_end(self, name: Token) -> int:
        """Where the statement's text ends: after its ';' or comment and its line end."""
        token = self.peek()
        if token is not None and token.text == ";":
            self.pos += 1
            token = self.peek()
            if token is not None and token.kind not in ("newline", "comment"):
                return token.start  # another statement follows on the same line
        if token is not None and token.kind == "comment":
            self.pos += 1
            token = self.peek()
        if token is None:
            return len(self.text)
        if token.kind != "newline":
            raise self.fail(f"{name.text}: expected the end of the line, found {token.text!r}",
                            token)
        self.pos += 1
        return token.start + 1

    def value(self) -> Value:
        opening = self.take()
        if opening.kind in ("string", "number"):
            return _scalar(opening)
        if opening.text != "[":
            raise self.fail(f"expected a quoted string, a number or a list, found "
                            f"{opening.text!r}", opening)
        items: list[Scalar] = []
        expect_item = True
        while True:
            if self.peek() is None:
                raise self.fail(f"the list opened on line {opening.line} has no ']'")
            token = self.take()
            if token.kind in ("newline", "comment"):
                continue
            if token.text == "]":
                return items
            if expect_item and token.kind in ("string", "number"):
                items.append(_scalar(token))
                expect_item = False
            elif not expect_item and token.text == ",":
                expect_item = True
            else:
                wanted = "an item or ']'" if expect_item else "',' or ']'"
                raise self.fail(f"expected {wanted} in the list, found {token.text!r}", token)


def parse(text: str, source: str = "<xl.cfg>") -> XlConfig:
    """Parse xl.cfg text; a bad file is one InvalidInput naming `source` and the line."""
    return _Parser(text, source).config()


def load(path: str) -> XlConfig:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not a text file ({exc.reason})") from exc
    return parse(text, path)
