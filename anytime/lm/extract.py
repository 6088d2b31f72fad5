"""Plain text from documentation formats: HTML (stdlib html.parser) and troff man pages.

The natural-text corpus (anytime.lm.natural_corpus) trains on prose, not markup: tags, scripts,
navigation bars and troff requests would be most of the tokens and teach nothing about language.
Both converters are deliberately simple (no layout engine): block elements and requests become
line breaks, inline markup disappears, preformatted text keeps its lines.
"""

from __future__ import annotations

import html.parser
import re

_BLOCK = {
  "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "pre", "blockquote",
  "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "hr", "title", "td", "th",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "nav", "head", "noscript", "svg"}
_SKIP_CLASSES = ("sphinxsidebar", "related", "footer", "navheader", "navfooter", "headerlink")


class _Text(html.parser.HTMLParser):
  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.out: list[str] = []
    self.skip: list[str] = []  # tag names opening the skipped regions (nested same-name count)
    self.pre = 0

  def handle_starttag(self, tag, attrs):
    if self.skip:
      if tag == self.skip[-1]:
        self.skip.append(tag)
      return
    classes = dict(attrs).get("class") or ""
    if tag in _SKIP_TAGS or any(c in classes for c in _SKIP_CLASSES):
      if tag not in ("br", "hr", "img", "meta", "link", "input"):
        self.skip.append(tag)
      return
    if tag == "pre":
      self.pre += 1
    if tag in _BLOCK:
      self.out.append("\n")

  def handle_endtag(self, tag):
    if self.skip:
      if tag == self.skip[-1]:
        self.skip.pop()
      return
    if tag == "pre":
      self.pre = max(0, self.pre - 1)
    if tag in _BLOCK:
      self.out.append("\n")

  def handle_data(self, data):
    if self.skip:
      return
    self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
  """The visible text of an HTML page, one block per line, title first, navigation dropped."""
  title = re.search(r"<title[^>]*>(.*?)</title>", markup, re.S | re.I)
  parser = _Text()
  parser.feed(markup)
  parser.close()
  lines = [line.rstrip() for line in "".join(parser.out).split("\n")]
  body = re.sub(r"\n{3,}", "\n\n", "\n".join(line if line.strip() else "" for line in lines))
  head = html.unescape(re.sub(r"\s+", " ", title.group(1))).strip() if title else ""
  return (head + "\n\n" + body.strip()).strip()


_ESCAPES = {"\\-": "-", "\\e": "\\", "\\&": "", "\\|": "", "\\^": "", "\\ ": " ", "\\~": " "}
_GLYPHS = {"em": "—", "en": "–", "bu": "•", "co": "©", "rg": "®", "lq": "“", "rq": "”",
           "aq": "'", "dq": '"', "ga": "`", "ti": "~", "ha": "^", "mu": "×", "<=": "≤",
           ">=": "≥", "->": "→", "oq": "‘", "cq": "’", "rs": "\\", "dg": "†",
           "hy": "-"}  # fmt: skip
_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "IR", "RB", "BI", "IB", "RI", "SM", "TP", "IP", "TQ",
                "Nm", "Nd", "Sh", "Ss", "Em", "Ar", "Fl", "Cm", "Pa", "Fn", "Xr", "It"}  # fmt: skip
_BRACES = re.compile(r"\s*(\\[{}]\\?|[.'])\s*$")  # empty requests, conditional braces
_INLINE = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\s[+-]?\d|\\\*(?:\[[^\]]*\]|\(..|.)|\\[nk]\S")


def _inline(line: str) -> str:
  line = re.sub(r"\\\((..)", lambda m: _GLYPHS.get(m.group(1), ""), line)
  line = re.sub(r"\\\[([^\]]*)\]", lambda m: _GLYPHS.get(m.group(1), ""), line)
  line = _INLINE.sub("", line)
  for k, v in _ESCAPES.items():
    line = line.replace(k, v)
  return line.replace("\\\\", "\\")


def man_to_text(troff: str) -> str:
  """A man page's text: comments and layout requests dropped, text-bearing macros' arguments
  kept (.SH NAME -> NAME), font and glyph escapes resolved or removed. "" for a .so link."""
  if troff.lstrip().startswith(".so "):
    return ""
  out = []
  for raw in troff.splitlines():
    if raw.startswith(('.\\"', "'\\\"", '.\\"')) or _BRACES.match(raw):
      continue
    if raw.startswith((".", "'")):
      m = re.match(r"[.'](\w+)\s*(.*)", raw)
      if not m:
        continue
      macro, args = m.groups()
      if macro in ("SH", "SS", "Sh", "Ss", "PP", "LP", "P", "sp", "Pp", "TP", "IP"):
        out.append("")
      if macro in _TEXT_MACROS and args:
        words = re.findall(r'"([^"]*)"|(\S+)', args)
        out.append(" ".join(a or b for a, b in words if (a or b) and not b.startswith("\\n")))
      continue
    out.append(raw)
  text = "\n".join(_inline(line).rstrip() for line in out)
  return re.sub(r"\n{3,}", "\n\n", text).strip()


__all__ = ["html_to_text", "man_to_text"]
