"""Scrapy's ``FormRequest``, with ``from_response`` picking and filling a form as Scrapy documents it.

Behaviour (Scrapy's documentation of ``FormRequest.from_response``):

* the form: the first ``<form>`` whose ``name`` is ``formname``, else whose ``id`` is ``formid``, else the
  first element matching ``formxpath`` (or ``formcss``) or its nearest ``<form>`` ancestor, else form
  number ``formnumber`` (0: the first). A name or id that matches nothing falls through to the next
  rule; a ``formxpath`` with no form or a page with no form is a ``ValueError``, a missing form number an
  ``IndexError`` (as Scrapy raises).
* the fields: every named ``<input>`` (not submit/image/reset buttons; checkboxes and radios only when
  checked, ``"on"`` without a value), ``<textarea>`` and ``<select>`` (its selected option, else the
  first; every selected option of a ``multiple`` one; nothing for one without options), in document order. ``formdata`` overrides fields
  of the same name, adds new ones, and a ``None`` value removes a field.
* the click: unless ``dont_click``, the first submit control (``<input type=submit|image>`` or a
  ``<button>`` without a type or with ``type=submit``) adds its name and value; ``clickdata`` picks it by
  attributes, or by ``nr``, its index among the submit controls; no match, or several, is a ``ValueError``.
* the URL is the form's ``action`` resolved against the page (its ``<base href>`` if any) by the WHATWG
  URL Standard (:mod:`kubecrawl.urls`), the page URL without an ``action``; the method is the form's
  (GET or POST; anything else is GET) unless ``method`` is given. GET sends the data as the query string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import lxml.html
from parsel.csstranslator import HTMLTranslator

from ....urls import BaseURL
from . import Request

if TYPE_CHECKING:
    from ....response import Response

_RE_NS = {"re": "http://exslt.org/regular-expressions"}
_FIELDS = (
    "descendant::textarea|descendant::select|descendant::input[not(@type) or @type["
    "not(re:test(., '^(?:submit|image|reset)$', 'i')) and "
    "(../@checked or not(re:test(., '^(?:checkbox|radio)$', 'i')))]]"
)
_CLICKABLES = (
    "descendant::input[re:test(@type, '^(submit|image)$', 'i')]"
    "|descendant::button[not(@type) or re:test(@type, '^submit$', 'i')]"
)
_HTML5_SPACE = " \t\n\r\x0c"

FormData = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _pairs(formdata: FormData | None) -> list[tuple[str, Any]]:
    if not formdata:
        return []
    if isinstance(formdata, Mapping):
        return list(formdata.items())
    try:
        return [(k, v) for k, v in formdata]
    except (TypeError, ValueError):
        raise ValueError("formdata should be a dict or iterable of tuples") from None


def _urlencode(pairs: list[tuple[str, Any]], encoding: str) -> str:
    flat = [
        (k.encode(encoding) if isinstance(k, str) else k, v.encode(encoding) if isinstance(v, str) else v)
        for k, vs in pairs
        for v in (vs if isinstance(vs, list | tuple) else [vs])
    ]
    return urlencode(flat, doseq=True)


def page_base_url(response: Response) -> str:
    """The URL relative links on the page resolve against: its first ``<base href>``, else its URL."""
    hrefs = response.selector.root.xpath("//base[@href][1]/@href") if response.body else []
    if hrefs:
        joined = BaseURL(response.url).resolve(str(hrefs[0]).strip(_HTML5_SPACE))
        if joined is not None:
            return joined
    return response.url


class FormRequest(Request):
    """``FormRequest(url, formdata=..., **Request kwargs)``: POST (by default) of URL-encoded form data."""

    __slots__ = ()
    valid_form_methods = ("GET", "POST")

    def __init__(self, *args: Any, formdata: FormData | None = None, **kwargs: Any) -> None:
        if formdata and "method" not in kwargs and len(args) < 3:
            kwargs["method"] = "POST"
        encoding = kwargs.get("encoding") or (args[7] if len(args) > 7 else "utf-8")
        super().__init__(*args, **kwargs)
        if formdata:
            query = _urlencode(_pairs(formdata), encoding)
            if self.method == "POST":
                self.headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
                self.body = query.encode("ascii")
            else:
                self.url = urlunsplit(urlsplit(self.url)._replace(query=query))

    @classmethod
    def from_response(
        cls,
        response: Response,
        formname: str | None = None,
        formid: str | None = None,
        formnumber: int = 0,
        formdata: FormData | None = None,
        clickdata: Mapping[str, Any] | None = None,
        dont_click: bool = False,
        formxpath: str | None = None,
        formcss: str | None = None,
        **kwargs: Any,
    ) -> FormRequest:
        kwargs.setdefault("encoding", response.encoding)
        if formcss is not None:
            formxpath = HTMLTranslator().css_to_xpath(formcss)
        base = page_base_url(response)
        form = _get_form(response, base, formname, formid, formnumber, formxpath)
        data = _form_values(form, formdata, dont_click, clickdata)
        url = kwargs.pop("url", None)
        action = form.get("action") if url is None else url
        target = BaseURL(base).resolve(action.strip(_HTML5_SPACE)) if action is not None else base
        method = kwargs.pop("method", None) or form.get("method") or "GET"
        method = method.upper()
        if method not in cls.valid_form_methods:
            method = "GET"
        return cls(target or base, method=method, formdata=data, **kwargs)


def _get_form(
    response: Response,
    base: str,
    formname: str | None,
    formid: str | None,
    formnumber: int,
    formxpath: str | None,
) -> lxml.html.FormElement:
    root = lxml.html.document_fromstring(response.text or "<html></html>", base_url=base)
    forms = root.xpath("//form")
    if not forms:
        raise ValueError(f"No <form> element found in {response}")
    if formname is not None:
        found = root.xpath("//form[@name=$v]", v=formname)
        if found:
            return found[0]
    if formid is not None:
        found = root.xpath("//form[@id=$v]", v=formid)
        if found:
            return found[0]
    if formxpath is not None:
        nodes = root.xpath(formxpath)
        if nodes:
            el = nodes[0]
            while el is not None and hasattr(el, "tag"):
                if el.tag == "form":
                    return el
                el = el.getparent()
        raise ValueError(f"No <form> element found with {formxpath}")
    try:
        return forms[formnumber]
    except IndexError:
        raise IndexError(f"Form number {formnumber} not found in {response}") from None


def _field_value(el: Any) -> tuple[str | None, Any]:
    name = el.get("name")
    if el.tag == "select":
        if el.multiple:
            values = [(o.get("value") or o.text or "").strip() for o in el.xpath(".//option[@selected]")]
            return name, values
        value = el.value
        if value is None:
            options = el.value_options
            value = options[0] if options else None
        return name, value
    if el.tag == "textarea":
        return name, el.value
    return name, el.value  # lxml: a checkbox or radio without a value attribute is "on"


def _form_values(
    form: lxml.html.FormElement,
    formdata: FormData | None,
    dont_click: bool,
    clickdata: Mapping[str, Any] | None,
) -> list[tuple[str, Any]]:
    given = _pairs(formdata)
    given_keys = {k for k, _ in given}
    values: list[tuple[str, Any]] = []
    for el in form.xpath(_FIELDS, namespaces=_RE_NS):
        name, value = _field_value(el)
        if name and name not in given_keys and not (value is None and el.tag == "select"):
            values.append((name, "" if value is None else value))  # a <select> without options is not sent
    if not dont_click:
        clicked = _clicked(form, clickdata)
        if clicked is not None and clicked[0] is not None and clicked[0] not in given_keys:
            values.append(clicked)  # type: ignore[arg-type]
    values.extend((k, v) for k, v in given if v is not None)
    return values


def _clicked(form: lxml.html.FormElement, clickdata: Mapping[str, Any] | None) -> tuple[str | None, str] | None:
    clickables = form.xpath(_CLICKABLES, namespaces=_RE_NS)
    if not clickables:
        return None
    if clickdata is None:
        el = clickables[0]
        return el.get("name"), el.get("value") or ""
    data = dict(clickdata)
    nr = data.pop("nr", None)
    if nr is not None:
        try:
            el = clickables[int(nr)]
        except (IndexError, ValueError):
            raise ValueError(f"No clickable element matching clickdata: {dict(clickdata)!r}") from None
        if all(el.get(k) == str(v) for k, v in data.items()):
            return el.get("name"), el.get("value") or ""
        raise ValueError(f"No clickable element matching clickdata: {dict(clickdata)!r}")
    matches = [el for el in clickables if all(el.get(k) == str(v) for k, v in data.items())]
    if len(matches) == 1:
        return matches[0].get("name"), matches[0].get("value") or ""
    if len(matches) > 1:
        raise ValueError(
            f"Multiple elements found ({matches!r}) matching the criteria in clickdata: {dict(clickdata)!r}"
        )
    raise ValueError(f"No clickable element matching clickdata: {dict(clickdata)!r}")
