"""Encodings of the text formats: detection (UTF-8, UTF-16 with a BOM, a confident GB18030
or Big5 guess), a user's encoding name, and where the first undecodable byte is."""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable
from typing import IO

from service.errors import BadRequest, UnprocessableContent


def check_encoding_name(name: str) -> str:
    """The codec name Python knows for ``name`` (a user's ``--encoding``), else 400."""
    try:
        # a probe (not of b"": that returns "" without asking the codec) refusing codecs that
        # are not text encodings (rot13, base64, zlib, …) and those that decode nothing the
        # way files are read (idna, undefined)
        b"x".decode(name, "ignore")
        return codecs.lookup(name).name
    except (LookupError, UnicodeError):
        raise BadRequest(f"unknown text encoding '{name}'; e.g. utf-8, gb18030, gbk, big5, "
                         "utf-16, latin-1") from None


@functools.cache
def _common_chinese() -> frozenset[str]:
    """Characters that text in GBK or Big5 is mostly made of: GB2312's 3,755 level-1 hanzi,
    Big5's 5,401 frequent hanzi, and both standards' punctuation rows."""
    chars: set[str] = set()

    def block(enc: str, leads: range, trails: list[int]) -> None:
        raw = bytes(b for lead in leads for t in trails for b in (lead, t))
        chars.update(raw.decode(enc, errors="ignore"))

    block("gb2312", range(0xB0, 0xD8), list(range(0xA1, 0xFF)))
    block("gb2312", range(0xA1, 0xA2), list(range(0xA1, 0xFF)))
    block("gb2312", range(0xA3, 0xA4), list(range(0xA1, 0xFF)))
    big5_trails = list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF))
    block("big5", range(0xA4, 0xC7), big5_trails)
    block("big5", range(0xA1, 0xA4), big5_trails)
    return frozenset(c for c in chars if not c.isascii())


def _share_common(text: str) -> tuple[float, int]:
    """Share of the non-ASCII characters of ``text`` that are common Chinese, and how many
    non-ASCII characters there are."""
    common = _common_chinese()
    wide = [c for c in text if not c.isascii() and c != "\ufeff"]
    if not wide:
        return 0.0, 0
    return sum(c in common for c in wide) / len(wide), len(wide)


def bad_byte(data: bytes, encoding: str, final: bool) -> UnicodeDecodeError | None:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=final)
    except UnicodeDecodeError as exc:
        return exc
    return None


def describe_position(data: bytes, pos: int, base: int = 0, base_lines: int = 0) -> str:
    line = base_lines + data[:pos].count(b"\n") + 1
    byte = data[pos:pos + 1].hex().upper() or "end of file"
    return f"line {line}, byte offset {base + pos:,} (byte 0x{byte})" if len(byte) == 2 \
        else f"line {line}, byte offset {base + pos:,} (the file ends inside a character)"


def detect_encoding(sample: bytes, complete: bool) -> str:
    """UTF-8 / UTF-16 (BOM) / GB18030 / Big5 of a sample; refuses a guess that is not
    confident."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = bad_byte(sample, "utf-8", complete)
    if bad is None:
        return "utf-8"
    scores = {}
    for enc in ("gb18030", "big5"):
        if bad_byte(sample, enc, complete) is None:
            text = codecs.getincrementaldecoder(enc)().decode(sample, final=complete)
            scores[enc] = _share_common(text)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1][0])
    if ranked:
        best, (share, n) = ranked[0]
        runner = ranked[1][1][0] if len(ranked) > 1 else 0.0
        if n >= 2 and share >= 0.8 and share - runner >= 0.2:
            return best
    where = describe_position(sample, bad.start)
    if bad.reason == "unexpected end of data":
        raise UnprocessableContent(
            f"the file ends in the middle of a UTF-8 character ({where}): it looks truncated; "
            "nothing was imported")
    raise UnprocessableContent(
        f"the file is not UTF-8 (first bad byte at {where}) and not confidently GB18030/GBK, "
        "Big5 or UTF-16 with a BOM; if you know its encoding, import with --encoding NAME "
        "(API: encoding=NAME), e.g. --encoding gb18030", encoding_tried=["utf-8", "gb18030",
                                                                          "big5"])


def _locate_decode_error(reopen: Callable[[], IO[bytes]], encoding: str) -> str:
    """Where the first undecodable byte of the whole (decompressed) file is: scanned from the
    start only after a decode error, so the happy path pays nothing."""
    dec = codecs.getincrementaldecoder(encoding)()
    offset = lines = 0
    stream = reopen()
    try:
        while True:
            block = stream.read(1 << 20)
            try:
                dec.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                data = bytes(exc.object)
                pending = len(data) - len(block)
                where = describe_position(data, exc.start, offset - pending, lines)
                if exc.reason == "unexpected end of data" and not block:
                    return f"the file ends inside a character at {where}: it looks truncated"
                return f"a byte that is not {encoding} at {where}"
            if not block:
                return f"a byte that is not {encoding}"
            offset += len(block)
            lines += block.count(b"\n")
    finally:
        stream.close()


def decode_failure(exc: UnicodeDecodeError, reopen: Callable[[], IO[bytes]],
                   encoding: str) -> UnprocessableContent:
    where = _locate_decode_error(reopen, encoding)
    return UnprocessableContent(
        f"the file cannot be decoded: {where}; nothing was imported; if the file is in another "
        "encoding, import with --encoding NAME (API: encoding=NAME)")
