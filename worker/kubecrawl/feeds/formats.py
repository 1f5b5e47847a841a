"""Item formats of file feeds: JSON lines, a JSON array, CSV and XML, each in any encoding.

An encoder turns a batch of stored items (their JSON, as the store holds them) into the bytes to
append. Formats with a closing part (the ``]`` of a JSON array, ``</items>`` of XML) keep it out of
the batches: the file sink writes it after every batch and overwrites it with the next one, so the
file on disk is complete after every batch and the resume point is the offset before the footer.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from ..errors import ConfigurationError

log = logging.getLogger(__name__)

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# characters XML 1.0 cannot carry at all, even as references
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Encoder:
    """One format. ``header`` opens an empty file, ``footer`` closes it after the last batch."""

    footer: bytes = b""

    def __init__(self, encoding: str, fields: tuple[str, ...] | None) -> None:
        self.encoding = encoding
        self.fields = fields
        #: characters the encoding could not carry (written as escapes) and fields a CSV had no column for
        self.replaced = 0
        self.dropped_fields = 0
        #: characters XML 1.0 cannot carry at all (control characters, U+FFFE/U+FFFF), written as U+FFFD
        self.illegal = 0

    def header(self) -> bytes:
        return b""

    def adopt(self, tail: bytes, whole: bool) -> int:
        """Continue a file: the offset in ``tail`` (its last bytes; ``whole``: all of it) to append at."""
        return len(tail)

    def adopt_header(self, head: bytes) -> None:
        """Learn what the file's first bytes say (CSV: its columns)."""

    def encode(self, items: list[bytes], first: bool) -> bytes:
        """The bytes of ``items`` (JSON each); ``first``: no item precedes them in the file."""
        raise NotImplementedError

    def _select(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            return item
        return {f: item.get(f) for f in self.fields}

    def _text(self, text: str, fallback: str = "backslashreplace") -> bytes:
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError:
            if fallback != "xmlcharrefreplace":  # character references: nothing lost
                self.replaced += 1
            return text.encode(self.encoding, errors=fallback)


def _loads(data: bytes) -> dict[str, Any]:
    obj = orjson.loads(data)
    return obj if isinstance(obj, dict) else {"value": obj}


class JsonLines(Encoder):
    def _one(self, data: bytes) -> bytes:
        if self.fields is None and self.encoding == "utf-8":
            return data  # the store's own JSON, byte for byte
        obj = self._select(_loads(data))
        if self.encoding == "utf-8":
            return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
        try:
            return json.dumps(obj, ensure_ascii=False).encode(self.encoding)
        except UnicodeEncodeError:
            return json.dumps(obj, ensure_ascii=True).encode(self.encoding)  # \u escapes: nothing lost

    def encode(self, items: list[bytes], first: bool) -> bytes:
        return b"".join(self._one(d) + b"\n" for d in items)


class JsonArray(JsonLines):
    footer = b"\n]\n"

    def header(self) -> bytes:
        return b"["

    def adopt(self, tail: bytes, whole: bool) -> int:
        body = tail.rstrip()
        if not body.endswith(b"]") or (whole and not body.lstrip().startswith(b"[")):
            raise ConfigurationError("cannot append: the file is not a JSON array (use -O to overwrite it)")
        return len(body[:-1].rstrip())

    def encode(self, items: list[bytes], first: bool) -> bytes:
        parts = [self._one(d) for d in items]
        return (b"\n" if first else b",\n") + b",\n".join(parts)


class Csv(Encoder):
    def header(self) -> bytes:
        return b""  # the header row goes with the first item: its fields are the columns unless given

    def adopt_header(self, head: bytes) -> None:
        if head and self.fields is None:
            first_line = head.split(b"\n", 1)[0].decode(self.encoding, errors="replace")
            self.fields = tuple(next(csv.reader([first_line]), []))

    @staticmethod
    def _cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, str):
            return v
        if isinstance(v, bool | int | float):
            return json.dumps(v)
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()

    def encode(self, items: list[bytes], first: bool) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        objs = [_loads(d) for d in items]
        if self.fields is None:
            self.fields = tuple(objs[0]) if objs else ()
        if first:
            w.writerow(self.fields)
        for obj in objs:
            extra = len(set(obj) - set(self.fields))
            if extra:
                self.dropped_fields += extra
            w.writerow([self._cell(obj.get(f)) for f in self.fields])
        return self._text(buf.getvalue())


class Xml(Encoder):
    footer = b"\n</items>\n"

    def header(self) -> bytes:
        return f'<?xml version="1.0" encoding="{self.encoding}"?>\n<items>'.encode(self.encoding)

    def adopt(self, tail: bytes, whole: bool) -> int:
        body = tail.rstrip()
        if not body.endswith(b"</items>"):
            raise ConfigurationError("cannot append: the file is not an XML feed of <items> (use -O to overwrite it)")
        return len(body[: -len(b"</items>")].rstrip())

    def _clean(self, text: str) -> str:
        cleaned, n = _XML_ILLEGAL.subn("\ufffd", text)
        self.illegal += n
        return escape(cleaned)

    def _element(self, name: str, value: Any) -> str:
        if _XML_NAME.match(name) and not name.lower().startswith("xml"):
            open_tag, close_tag = f"<{name}>", f"</{name}>"
        else:
            open_tag, close_tag = f"<field name={quoteattr(self._clean(name))}>", "</field>"
        return open_tag + self._value(value) + close_tag

    def _value(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dict):
            return "".join(self._element(str(k), v) for k, v in value.items())
        if isinstance(value, list):
            return "".join(self._element("value", v) for v in value)
        if isinstance(value, bool | int | float):
            return json.dumps(value)
        return self._clean(str(value))

    def encode(self, items: list[bytes], first: bool) -> bytes:
        text = "".join("\n<item>" + self._value(self._select(_loads(d))) + "</item>" for d in items)
        return self._text(text, fallback="xmlcharrefreplace")


ENCODERS: dict[str, type[Encoder]] = {"jsonl": JsonLines, "json": JsonArray, "csv": Csv, "xml": Xml}


def encoder_for(fmt: str, encoding: str, fields: tuple[str, ...] | None) -> Encoder:
    return ENCODERS[fmt](encoding, fields)
