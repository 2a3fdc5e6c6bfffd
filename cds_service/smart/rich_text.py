"""Card ``detail`` (CDS Hooks: GitHub-flavoured markdown) → HTML safe to put in the page.

Why libraries, not a hand-written converter: markdown-it-py is a maintained
CommonMark parser (tables and strikethrough as in GFM), and nh3 (the Rust
Ammonia sanitizer; bleach is deprecated) removes anything but the formatting
tags below.  Raw HTML in the markdown is not rendered at all (``html: False``),
and the sanitizer runs anyway, because the text may carry EHR data.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])

TAGS = {"p", "br", "strong", "em", "code", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
        "blockquote", "h3", "h4", "s", "del", "pre"}
ATTRIBUTES = {"a": {"href", "title"}}


def to_html(markdown: str) -> str:
    """Sanitized HTML of ``markdown``; links only http(s), opened with rel=noopener noreferrer."""
    html = _MD.render(markdown or "")
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https"},
                     link_rel="noopener noreferrer")
