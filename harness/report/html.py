"""report.html: one self-contained page (inline CSS, figures as base64 data URIs, no external resource)."""

from __future__ import annotations

import base64
from html import escape

from harness.report.document import Document, Figure, Section, Text

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
td.PASS { color: #1a7f37; font-weight: 600; } td.FAIL { color: #cf222e; font-weight: 600; }
td.NO-DATA, td.INCONCLUSIVE { color: #9a6700; font-weight: 600; }
img { max-width: 100%; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
.note, .empty { color: #59636e; font-size: .9rem; }
"""
STATUS = {"PASS", "FAIL", "NO DATA", "INCONCLUSIVE"}


def _table(s: Section) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in s.columns)
    rows = []
    for i, row in enumerate(s.rows):
        cells = []
        for j, c in enumerate(row):
            cls = f' class="{c.replace(" ", "-")}"' if c in STATUS else ""
            text = f'<a href="{escape(s.link(i, j))}" target="_blank">{escape(c)}</a>' if s.link(i, j) else escape(c)
            text = f"<b>{text}</b>" if s.is_bold(i, j) else text
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _block(b: Section | Figure | Text) -> str:
    out = [f"<h2>{escape(b.title)}</h2>"]
    if isinstance(b, Section):
        out.append(_table(b) if b.rows else '<p class="empty">no results yet</p>')
        if b.note:
            out.append(f'<p class="note">{escape(b.note)}</p>')
    elif isinstance(b, Figure):
        if b.path is None:
            out.append('<p class="empty">no results yet</p>')
        else:
            data = base64.b64encode(b.path.read_bytes()).decode()
            out.append(f'<img alt="{escape(b.title)}" src="data:image/png;base64,{data}">')
            if b.note:
                out.append(f'<p class="note">{escape(b.note)}</p>')
    else:
        out += [f"<p>{escape(line)}</p>" for line in b.lines]
        if b.code:
            out.append("<pre>" + escape("\n".join(b.code)) + "</pre>")
    return "\n".join(out)


def render_html(doc: Document) -> str:
    body = [f"<h1>{escape(doc.title)}</h1>", *[f"<p>{escape(p)}</p>" for p in doc.intro], *map(_block, doc.blocks)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
