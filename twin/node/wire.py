"""The node tools' wire format: netstrings ("<length>:<bytes>,"), the same from either client.

The compiled client (bin/_fake_tool.c) and the reference one (bin/_fake_tool.py) send a request as
netstrings: tool, cwd, stdin, then a count and the argv items, a count and the environment's name/value
pairs, a count and the files' path/content pairs. The server replies with exit code, stdout, stderr.
A format C reads in a few lines, where `marshal` tied the client to the twin's own interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass


class WireError(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    tool: str
    cwd: str
    stdin: str
    argv: list[str]
    env: dict[str, str]
    files: dict[str, str]


def netstring(value: str) -> bytes:
    data = value.encode()
    return b"%d:%b," % (len(data), data)


def encode_reply(exit_code: int, stdout: str, stderr: str) -> bytes:
    return netstring(str(exit_code)) + netstring(stdout) + netstring(stderr)


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._offset = 0

    def text(self) -> str:
        colon = self._raw.find(b":", self._offset, self._offset + 21)
        if colon < 0 or not self._raw[self._offset : colon].isdigit():
            raise WireError(f"malformed netstring at byte {self._offset}")
        end = colon + 1 + int(self._raw[self._offset : colon])
        if self._raw[end : end + 1] != b",":
            raise WireError(f"netstring at byte {self._offset} is cut short")
        self._offset = end + 1
        return self._raw[colon + 1 : end].decode()

    def count(self) -> int:
        value = self.text()
        if not value.isdigit():
            raise WireError(f"expected a count, got {value!r}")
        return int(value)

    def pairs(self) -> dict[str, str]:
        return dict((self.text(), self.text()) for _ in range(self.count()))

    def done(self) -> None:
        if self._offset != len(self._raw):
            raise WireError(f"{len(self._raw) - self._offset} bytes after the request")


def decode_request(raw: bytes) -> Request:
    reader = _Reader(raw)
    tool, cwd, stdin = reader.text(), reader.text(), reader.text()
    argv = [reader.text() for _ in range(reader.count())]
    env = reader.pairs()
    files = reader.pairs()
    reader.done()
    return Request(tool=tool, cwd=cwd, stdin=stdin, argv=argv, env=env, files=files)
