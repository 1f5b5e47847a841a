"""Decoding response bodies to text the way a browser does: the WHATWG Encoding Standard.

Order (HTML's "determine the character encoding"): a byte-order mark wins; then the HTTP
``Content-Type`` charset; then the HTML prescan of ``<meta charset>`` / ``<meta http-equiv>``;
then, only if nothing valid was declared, detection (strict UTF-8 first, then charset-normalizer).
Every label of the standard's table maps to its encoding; an unknown label is ignored and the next
declaration honoured. GBK and GB2312 decode as GB18030 (the standard's GBK decoder is GB18030's).
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

__all__ = ["declared_codec", "declared_encoding", "decode_as", "decode_body", "lookup_label", "prescan"]

_DETECT_WINDOW = 64 * 1024
#: the HTML standard prescans the first 1024 bytes; a browser that meets a later <meta> while
#: parsing re-decodes the page with it, so the prescan looks further, as far as this. (Whatever the
#: first 1024 bytes declare, a longer prescan finds first too.)
_PRESCAN_WINDOW = 16 * 1024

# -- the label table ---------------------------------------------------------------------------
# The Encoding Standard's names and labels (https://encoding.spec.whatwg.org/#names-and-labels),
# with the Python codec that decodes each. tests/unit/test_standards.py checks this against the
# webencodings package's copy of the same table (an independent implementation).
_ENCODINGS: dict[str, tuple[str, str]] = {
    # name: (python codec, space-separated labels)
    "UTF-8": ("utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    "IBM866": ("cp866", "866 cp866 csibm866 ibm866"),
    "ISO-8859-2": (
        "iso8859-2",
        "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    ),
    "ISO-8859-3": (
        "iso8859-3",
        "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    ),
    "ISO-8859-4": (
        "iso8859-4",
        "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    ),
    "ISO-8859-5": (
        "iso8859-5",
        "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988",
    ),
    "ISO-8859-6": (
        "iso8859-6",
        "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
        "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    ),
    "ISO-8859-7": (
        "iso8859-7",
        "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
        "iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    ),
    "ISO-8859-8": (
        "iso8859-8",
        "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
        "iso_8859-8 iso_8859-8:1988 visual",
    ),
    "ISO-8859-8-I": ("iso8859-8", "csiso88598i iso-8859-8-i logical"),  # same bytes, logical order
    "ISO-8859-10": ("iso8859-10", "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6"),
    "ISO-8859-13": ("iso8859-13", "iso-8859-13 iso8859-13 iso885913"),
    "ISO-8859-14": ("iso8859-14", "iso-8859-14 iso8859-14 iso885914"),
    "ISO-8859-15": ("iso8859-15", "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9"),
    "ISO-8859-16": ("iso8859-16", "iso-8859-16"),
    "KOI8-R": ("koi8-r", "cskoi8r koi koi8 koi8-r koi8_r"),
    "KOI8-U": ("koi8-u", "koi8-ru koi8-u"),
    "macintosh": ("mac-roman", "csmacintosh mac macintosh x-mac-roman"),
    "windows-874": ("cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    "windows-1250": ("cp1250", "cp1250 windows-1250 x-cp1250"),
    "windows-1251": ("cp1251", "cp1251 windows-1251 x-cp1251"),
    "windows-1252": (
        "cp1252",
        "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
        "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    ),
    "windows-1253": ("cp1253", "cp1253 windows-1253 x-cp1253"),
    "windows-1254": (
        "cp1254",
        "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5 "
        "windows-1254 x-cp1254",
    ),
    "windows-1255": ("cp1255", "cp1255 windows-1255 x-cp1255"),
    "windows-1256": ("cp1256", "cp1256 windows-1256 x-cp1256"),
    "windows-1257": ("cp1257", "cp1257 windows-1257 x-cp1257"),
    "windows-1258": ("cp1258", "cp1258 windows-1258 x-cp1258"),
    "x-mac-cyrillic": ("mac-cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    "GBK": ("gb18030", "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk"),
    "gb18030": ("gb18030", "gb18030"),
    "Big5": ("big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    "EUC-JP": ("euc-jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    "ISO-2022-JP": ("iso2022-jp", "csiso2022jp iso-2022-jp"),
    "Shift_JIS": ("cp932", "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis"),
    "EUC-KR": (
        "cp949",
        "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 windows-949",
    ),
    "replacement": ("replacement", "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement"),
    "UTF-16BE": ("utf-16-be", "unicodefffe utf-16be"),
    "UTF-16LE": ("utf-16-le", "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le"),
    "x-user-defined": ("x-user-defined", "x-user-defined"),
}
_LABELS: dict[str, str] = {label: name for name, (_, labels) in _ENCODINGS.items() for label in labels.split()}
_ASCII_WS = "\t\n\f\r "


def lookup_label(label: str) -> str | None:
    """The Encoding Standard's "get an encoding": the encoding name for ``label``, or ``None``."""
    return _LABELS.get(label.strip(_ASCII_WS).lower())


def codec_of(name: str) -> str:
    """The Python codec (or ``replacement`` / ``x-user-defined``) that decodes encoding ``name``."""
    return _ENCODINGS[name][0]


# -- decoders Python lacks ---------------------------------------------------------------------
def _windows_1252_holes(exc: UnicodeError) -> tuple[str, int]:
    # the standard's windows-1252 maps the five bytes cp1252 leaves undefined to C1 controls
    assert isinstance(exc, UnicodeDecodeError)
    return chr(exc.object[exc.start]), exc.start + 1


codecs.register_error("kubecrawl.windows-1252", _windows_1252_holes)
_X_USER_DEFINED = {b: 0xF780 + b - 0x80 for b in range(0x80, 0x100)}


def _decode(body: bytes, codec: str) -> str:
    if codec == "cp1252":
        return body.decode("cp1252", "kubecrawl.windows-1252")
    if codec == "replacement":  # a security measure: ISO-2022-KR & co. must not decode at all
        return "\ufffd" if body else ""
    if codec == "x-user-defined":
        return body.decode("latin-1").translate(_X_USER_DEFINED)
    return body.decode(codec, "replace")


# -- the HTML prescan ----------------------------------------------------------------------------
# https://html.spec.whatwg.org/multipage/parsing.html#prescan-a-byte-stream-to-determine-its-encoding
_ATTR_START = re.compile(rb"[\t\n\f\r /]*+")
_ATTR_NAME = re.compile(rb"(?:=|[^\t\n\f\r />=])[^\t\n\f\r />=]*+")
_SPACES = re.compile(rb"[\t\n\f\r ]*+")
_UNQUOTED = re.compile(rb"[^\t\n\f\r >]*+")
_TAG_NAME_END = re.compile(rb"[\t\n\f\r >]")
_META = re.compile(rb"<meta[\t\n\f\r /]", re.IGNORECASE)
#: a whole tag's attributes up to its ">", as _get_attribute reads them one by one: the prescan steps
#: over every other tag with one match. An "=" must be followed by a value (an unterminated quote
#: makes the match fail, as the spec's end of input aborts the prescan).
_VALUE = rb"""(?:"[^"]*+"|'[^']*+'|(?=>)|[^\t\n\f\r >"'][^\t\n\f\r >]*+)"""
_NAME = rb"(?:=|[^\t\n\f\r />=])[^\t\n\f\r />=]*+"
#: after a name: no "=" ahead (no value), or "=" and a value that must be there
_EQ_VALUE = rb"(?:(?![\t\n\f\r ]*+=)|[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb")"
_TAG_REST = re.compile(rb"(?:[\t\n\f\r /]*+" + _NAME + _EQ_VALUE + rb")*+[\t\n\f\r /]*+>")
_CHARSET_IN_CONTENT = re.compile(rb"charset[\t\n\f\r ]*=[\t\n\f\r ]*", re.IGNORECASE)


def _get_attribute(buf: bytes, pos: int) -> tuple[bytes, bytes, int] | None:
    """HTML's "get an attribute": ``(name, value, position after it)``; at ``>`` the name is empty
    and the position is that ``>``'s. ``None`` when the input ends first (the prescan aborts)."""
    n = len(buf)
    pos = _ATTR_START.match(buf, pos).end()  # type: ignore[union-attr]
    if pos >= n:
        return None
    if buf[pos] == 0x3E:
        return b"", b"", pos
    m = _ATTR_NAME.match(buf, pos)
    assert m is not None
    name = m.group().lower()
    pos = _SPACES.match(buf, m.end()).end()  # type: ignore[union-attr]
    if pos >= n:
        return None
    if buf[pos] != 0x3D:  # not "=": an attribute without a value
        return name, b"", pos
    pos = _SPACES.match(buf, pos + 1).end()  # type: ignore[union-attr]
    if pos >= n:
        return None
    first = buf[pos]
    if first in (0x22, 0x27):
        close = buf.find(bytes((first,)), pos + 1)
        if close < 0:
            return None
        return name, buf[pos + 1 : close].lower(), close + 1
    if first == 0x3E:
        return name, b"", pos
    m = _UNQUOTED.match(buf, pos)
    assert m is not None
    if m.end() >= n:
        return None
    return name, m.group().lower(), m.end()


def _charset_from_content(value: bytes) -> str | None:
    """HTML's "extract a character encoding from a meta element" for a ``content`` value."""
    m = _CHARSET_IN_CONTENT.search(value)
    if m is None:
        return None
    start = m.end()
    if start >= len(value):
        return None
    first = value[start]
    if first in (0x22, 0x27):
        close = value.find(bytes((first,)), start + 1)
        return None if close < 0 else lookup_label(value[start + 1 : close].decode("latin-1"))
    end = start
    while end < len(value) and value[end] not in b"\t\n\f\r ;":
        end += 1
    return lookup_label(value[start:end].decode("latin-1"))


_ABORT = -1


def _meta_encoding(buf: bytes, pos: int) -> tuple[str | None, int]:
    """The encoding a ``<meta`` at ``pos`` declares (or None), and where its attributes end
    (``_ABORT`` if the input ends inside it)."""
    seen: set[bytes] = set()
    got_pragma = False
    need_pragma: bool | None = None
    charset: str | None = None
    pos += 5
    while True:
        attr = _get_attribute(buf, pos)
        if attr is None:
            return None, _ABORT
        name, value, pos = attr
        if not name:
            break
        if name in seen:
            continue
        seen.add(name)
        if name == b"http-equiv":
            got_pragma = got_pragma or value == b"content-type"
        elif name == b"content":
            if charset is None:
                found = _charset_from_content(value)
                if found is not None:
                    charset, need_pragma = found, True
        elif name == b"charset":
            charset, need_pragma = lookup_label(value.decode("latin-1")), False
    if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
        return None, pos
    if charset in ("UTF-16BE", "UTF-16LE"):
        charset = "UTF-8"  # a page that can be prescanned is not UTF-16, whatever it says
    elif charset == "x-user-defined":
        charset = "windows-1252"
    return charset, pos


def prescan(body: bytes, limit: int = 1024) -> str | None:
    """The encoding the first ``limit`` bytes declare in a ``<meta>``, by HTML's prescan algorithm:
    comments are skipped, attributes of other tags are stepped over, and a ``<meta>`` with an
    unknown label is ignored so that the next one counts."""
    buf = body[:limit]
    # only a <meta> can declare: past the last one there is nothing to find
    last_meta = buf.lower().rfind(b"<meta")
    pos = 0
    while 0 <= (pos := buf.find(b"<", pos)) <= last_meta:
        if buf.startswith(b"<!--", pos):
            end = buf.find(b"-->", pos + 2)  # "<!-->" is a whole comment
            if end < 0:
                return None
            pos = end + 3
        elif _META.match(buf, pos):
            found, pos = _meta_encoding(buf, pos)
            if found is not None:
                return found
            if pos == _ABORT:
                return None
        elif buf[pos + 1 : pos + 2].isalpha() or (buf[pos + 1 : pos + 2] == b"/" and buf[pos + 2 : pos + 3].isalpha()):
            m = _TAG_NAME_END.search(buf, pos + 2)
            if m is None:
                return None
            m = _TAG_REST.match(buf, m.start())
            if m is None:
                return None  # the input ends inside the tag
            pos = m.end()
        elif buf[pos + 1 : pos + 2] in (b"!", b"/", b"?"):
            end = buf.find(b">", pos + 2)
            if end < 0:
                return None
            pos = end + 1
        else:
            pos += 1
    return None


# -- putting it together -----------------------------------------------------------------------
_BOMS = ((b"\xef\xbb\xbf", "UTF-8"), (b"\xfe\xff", "UTF-16BE"), (b"\xff\xfe", "UTF-16LE"))
#: the charset parameter of a MIME type (the first one counts; quoted or not)
_CHARSET_PARAM = re.compile(r"""(?:^|;)[ \t]*charset[ \t]*=[ \t]*(?:"([^"]*)"|([^;"]*))""", re.IGNORECASE)


def _header_encoding(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _CHARSET_PARAM.search(content_type)
    if m is None:
        return None
    return lookup_label(m.group(1) if m.group(1) is not None else m.group(2))


def _detect(body: bytes) -> str:
    try:
        body.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(body[:_DETECT_WINDOW]).best()
    if best is not None:
        found = lookup_label(best.encoding.replace("_", "-")) or _PY_CODEC_NAMES.get(codecs.lookup(best.encoding).name)
        if found is not None and found not in ("UTF-16BE", "UTF-16LE", "replacement"):
            return found
    return "windows-1252"  # the standard's fallback for an undeclared, undetectable legacy page


#: Python codec name -> the standard's encoding, for what charset-normalizer names by codec
_PY_CODEC_NAMES = {
    codecs.lookup(c).name: n
    for n, (c, _) in _ENCODINGS.items()
    if n not in ("GBK", "ISO-8859-8-I", "replacement", "x-user-defined")
} | {
    "gbk": "GBK",
    "gb2312": "GBK",
    "big5": "Big5",
    "shift_jis": "Shift_JIS",
    "euc_kr": "EUC-KR",
    "latin-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "ascii": "windows-1252",
}


def declared_encoding(body: bytes, content_type: str | None) -> str | None:
    """The encoding the BOM, the header or a ``<meta>`` declares, in that order; ``None`` if none
    declares a valid one (then :func:`decode_body` detects it)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return _header_encoding(content_type) or prescan(body, _PRESCAN_WINDOW)


def _codec_name(name: str) -> str:
    codec = codec_of(name)
    return codec if codec in ("replacement", "x-user-defined") else codecs.lookup(codec).name


def declared_codec(body: bytes, content_type: str | None) -> str | None:
    """The codec name :func:`decode_body` would report, when it needs no detection (cheap)."""
    name = declared_encoding(body, content_type)
    return None if name is None else _codec_name(name)


def decode_as(body: bytes, codec: str) -> str:
    """``body`` decoded with a codec name from :func:`declared_codec` / :func:`decode_body`."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            if _codec_name(name) == codec:
                body = body[len(bom) :]
            break
    return _decode(body, codec)


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Return ``(encoding, text)``: the Python codec name used (or ``x-user-defined`` /
    ``replacement``) and the text. Undecodable bytes become U+FFFD; this never raises."""
    name = declared_encoding(body, content_type)
    if name is None:
        name = _detect(body)
    codec = _codec_name(name)
    return codec, decode_as(body, codec)
