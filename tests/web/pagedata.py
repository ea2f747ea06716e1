"""Read the figures a deploy page shows, from its HTML (stdlib parser, no page internals)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class Cell:
    field: str
    value: str  # data-value attribute
    text: str  # what a reader sees
    table: str  # id of the enclosing table
    row: int  # device row index (devices table), else -1


@dataclass
class DeployPage:
    h1: str = ""
    fit_sentence: str = ""
    fit_attrs: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    values_text: str = ""
    values_href: str = ""
    faq_questions: list[str] = field(default_factory=list)
    json_ld: list[dict[str, Any]] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)

    def cell(self, name: str, table: str | None = None) -> Cell:
        found = [c for c in self.cells if c.field == name and (table is None or c.table == table)]
        assert len(found) == 1, (name, table, found)
        return found[0]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = DeployPage()
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._capture: list[tuple[str, int, dict[str, str], list[str]]] = []  # (kind, depth, attrs, text)
        self._table = ""
        self._row = -1
        self._in_faq = False
        self._script = False
        self._script_buf: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if tag in ("br", "meta", "link", "input", "img", "hr", "wbr", "source"):
            if tag == "br":
                for cap in self._capture:
                    cap[3].append(" ")
            return
        self._stack.append((tag, attrs))
        depth = len(self._stack)
        if tag == "table":
            self._table = attrs.get("id", "")
        if tag == "tr":
            self._row = int(attrs["data-device"]) if "data-device" in attrs else -1
        if tag == "section" and attrs.get("class") == "faq":
            self._in_faq = True
        if tag == "script" and attrs.get("type") == "application/ld+json":
            self._script = True
            self._script_buf = []
        if "data-field" in attrs:
            self._capture.append(("cell", depth, attrs, []))
        elif tag == "h1":
            self._capture.append(("h1", depth, attrs, []))
        elif tag == "p" and attrs.get("id") == "fit-sentence":
            self.page.fit_attrs = attrs
            self._capture.append(("fit", depth, attrs, []))
        elif tag == "code" and attrs.get("id") == "values-text":
            self._capture.append(("values", depth, attrs, []))
        elif tag in ("h2", "h3", "h4"):
            self._capture.append((tag, depth, attrs, []))
        if tag == "a" and attrs.get("id") == "values-link":
            self.page.values_href = attrs.get("href", "")

    def handle_startendtag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        """``<rect ... />`` and friends: nothing to read, nothing to push."""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "meta", "link", "input", "img", "hr", "wbr", "source") or not self._stack:
            return
        depth = len(self._stack)
        while self._capture and self._capture[-1][1] == depth:
            kind, _, attrs, buf = self._capture.pop()
            text = " ".join("".join(buf).split())
            if kind == "cell":
                self.page.cells.append(Cell(attrs["data-field"], attrs["data-value"], text, self._table, self._row))
            elif kind == "h1":
                self.page.h1 = text
                self.page.headings.append((1, text))
            elif kind == "fit":
                self.page.fit_sentence = text
            elif kind == "values":
                self.page.values_text = "".join(buf)
            else:
                level = int(kind[1])
                self.page.headings.append((level, text))
                if self._in_faq and level == 3:
                    self.page.faq_questions.append(text)
        if tag == "script" and self._script:
            self._script = False
            self.page.json_ld.append(json.loads("".join(self._script_buf)))
        if tag == "section":
            self._in_faq = False
        self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._script:
            self._script_buf.append(data)
        for cap in self._capture:
            cap[3].append(data)


def parse_deploy_page(text: str) -> DeployPage:
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.page


GB_RE = re.compile(r"([\d,]+\.\d+) GB\b")
GIB_RE = re.compile(r"([\d,]+\.\d+) GiB\b")
NUM_RE = re.compile(r"[\d,]+(?:\.\d+)?")


def number(text: str) -> float:
    m = NUM_RE.search(text)
    assert m, text
    return float(m.group(0).replace(",", ""))


def decimals(text: str) -> int:
    m = NUM_RE.search(text)
    assert m, text
    s = m.group(0)
    return len(s.split(".")[1]) if "." in s else 0


def unescape(text: str) -> str:
    return html.unescape(text)
