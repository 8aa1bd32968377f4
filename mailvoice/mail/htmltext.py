"""Visible text of an HTML mail body: no script, style, head or hidden elements, nothing fetched."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

log = logging.getLogger(__name__)


_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "ul",
        "ol",
        "table",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "pre",
        "hr",
        "dd",
        "dt",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "address",
    }
)
_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "head",
        "title",
        "template",
        "noscript",
        "iframe",
        "object",
        "embed",
        "svg",
        "math",
        "audio",
        "video",
        "canvas",
        "select",
        "button",
    }
)
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "param"}
)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all"
    r"|font-size\s*:\s*0+(?:px|pt|em|%)?\s*(?:;|$|!)|opacity\s*:\s*0+(?:\.0+)?\s*(?:;|$|!)",
    re.IGNORECASE,
)


class _VisibleText(HTMLParser):
    """Collects the text a reader would see: no scripts, styles, head or hidden elements; fetches nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            elif self.skip_tag == "head" and tag == "body":  # an unclosed <head> must not swallow the body
                self.skip_tag = None
            return
        hidden = tag in _DROP_TAGS or any(
            (k == "hidden")
            or (k == "aria-hidden" and (v or "").lower() == "true")
            or (k == "style" and v is not None and _HIDDEN_STYLE.search(v) is not None)
            for k, v in attrs
        )
        if hidden and tag not in _VOID_TAGS:
            self.skip_tag, self.skip_depth = tag, 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth <= 0:
                    self.skip_tag = None
            return
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_tag is None:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML body, paragraphs kept as blank lines."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but a crash here must not lose the mail
        log.debug("html.parser failed; keeping the text collected so far")
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
