"""anytime.lm.natural_corpus on tiny synthetic sources: extraction (HTML, gzip'd man page, plain
text), exact and near-duplicate removal, the by-document split and the shards it writes."""

import gzip
import json

import numpy as np

from anytime.lm import extract, natural_corpus, near_dup

VOCAB = [f"w{k}" for k in range(3000)]


def prose(n, seed):
  return " ".join(np.random.default_rng(seed).choice(VOCAB, size=n))


HTML = """<html><head><title>The &amp; Title</title><style>p {color: red}</style></head>
<body><div class="sphinxsidebar">Navigation junk</div><h1>Heading</h1>
<p>First   paragraph with <b>bold</b> text.</p><script>var x = 1;</script>
<pre>  indented
    code</pre><ul><li>one</li><li>two</li></ul></body></html>"""

MAN = r""".\" a comment
.TH FOO 1 2024 "tests"
.SH NAME
foo \- frobnicate the \fIbar\fP
.SH DESCRIPTION
.B foo
reads \fBinput\fR and writes \(em output.
.PP
.if n \{\
\}
Second paragraph.
"""


def test_html_to_text_keeps_visible_text_only():
  text = extract.html_to_text(HTML)
  assert text.startswith("The & Title")
  assert "First paragraph with bold text." in text
  assert "  indented\n    code" in text
  assert "one\n" in text and "two" in text
  for junk in ("Navigation", "color", "var x", "<", ">"):
    assert junk not in text


def test_man_to_text_strips_macros(tmp_path):
  path = tmp_path / "foo.1.gz"
  path.write_bytes(gzip.compress(MAN.encode()))
  text = natural_corpus.read_document(str(path), "man")
  assert text.startswith("NAME\nfoo - frobnicate the bar")
  assert "foo\nreads input and writes — output." in text
  assert "Second paragraph." in text and "comment" not in text and "\\" not in text
  assert extract.man_to_text(".so man1/bar.1\n") == ""


def test_near_dup_removes_near_copies_and_keeps_unrelated():
  base = prose(400, 1)
  words = base.split()
  for k in (50, 170, 300):
    words[k] = "changed"
  near = " ".join(words)
  assert near_dup.jaccard(base, near) >= 0.8
  unrelated = prose(400, 2)
  exact = base.upper().replace(" ", "  ")  # same normalised text
  assert near_dup.dedup([base, near, unrelated, exact]) == ["kept", "near", "kept", "exact"]
  half = " ".join(base.split()[:200] + unrelated.split()[:200])  # Jaccard ~0.3 with each
  assert near_dup.dedup([base, unrelated, half]) == ["kept", "kept", "kept"]


def test_signature_estimates_jaccard_deterministically():
  wh = near_dup._WordHashes()
  a, b = prose(2000, 3), prose(2000, 4)
  c = " ".join(a.split()[:1000] + b.split()[:1000])
  sa, sc = (near_dup.signature(wh(near_dup.words(t))) for t in (a, c))
  assert np.array_equal(sa, near_dup.signature(near_dup._WordHashes()(near_dup.words(a))))
  assert abs(np.mean(sa == sc) - near_dup.jaccard(a, c)) < 0.2


def sources(tmp_path):
  """Three tiny sources: HTML pages, gzip'd man pages, plain text (with duplicates)."""
  tmp_path.mkdir(exist_ok=True)
  files = {"html": [], "man": [], "text": []}
  for k in range(12):
    p = tmp_path / f"page{k}.html"
    p.write_text(f"<html><title>t{k}</title><body><p>{prose(150, 100 + k)}</p></body></html>")
    files["html"].append((str(p), "html"))
    p = tmp_path / f"man{k}.1.gz"
    p.write_bytes(gzip.compress(f".TH M{k} 1\n.SH NAME\n{prose(150, 200 + k)}\n".encode()))
    files["man"].append((str(p), "man"))
    p = tmp_path / f"doc{k}.txt"
    p.write_text(prose(150, 300 + k))
    files["text"].append((str(p), "text"))
  dup = tmp_path / "copy.txt"  # the text of page 0: an exact duplicate across sources
  dup.write_text(extract.html_to_text((tmp_path / "page0.html").read_text()).upper())
  files["text"].append((str(dup), "text"))
  short = tmp_path / "short.txt"
  short.write_text("too short")
  files["text"].append((str(short), "text"))
  srcs = [natural_corpus.Source(n, "", "test", lambda p: None) for n in files]
  return srcs, lambda s: files[s.name]


def test_collect_split_and_shards(tmp_path):
  srcs, files_of = sources(tmp_path)
  docs, stats = natural_corpus.collect(srcs, files_of, min_chars=200)
  assert stats["text"]["exact"] == 1 and stats["text"]["short"] == 1
  assert [stats[n]["documents"] for n in ("html", "man", "text")] == [12, 12, 12]
  train, val = natural_corpus.split_documents(docs, 0.1)
  again = natural_corpus.split_documents(list(reversed(docs)), 0.1)
  assert (train, val) == again  # by content hash, not by position
  assert {t for _, t in train}.isdisjoint(t for _, t in val)
  assert len(train) + len(val) == len(docs)
  assert {s for s, _ in val} == {"html", "man", "text"}  # every source held out
  paths = natural_corpus.write_shards(val, str(tmp_path / "jsonl"), "val")
  assert [p.rsplit("/", 1)[1] for p in paths] == ["val-00000-of-00001.json.gz"]
  with gzip.open(paths[0], "rt", encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  assert [(r["source"], r["text"]) for r in records] == val
  assert all(set(r) == {"text", "source"} for r in records)


def test_build_prepares_exactly_the_held_out_documents(tmp_path, capsys):
  srcs, files_of = sources(tmp_path / "src")
  out = tmp_path / "out"
  report = natural_corpus.build(
    str(out), sources=srcs, files_of=files_of, vocab_size=300, val_fraction=0.1, min_chars=200
  )
  meta = json.loads((out / "rows" / "meta.json").read_text())
  assert meta["format"] == "anytime-rows" and meta["val"]["by"] == "shards"
  val_docs = sum(s["val_documents"] for s in report["sources"].values())
  assert meta["splits"]["val"]["documents"] == val_docs >= 3
  assert meta["splits"]["train"]["documents"] == 36 - val_docs
  assert report["train_tokens"] == meta["splits"]["train"]["tokens"]
  # the per-source counts (trained tokenizer, + EOS) add up to the pipeline's token count
  counted = sum(s["train_tokens"] for s in report["sources"].values())
  assert counted == meta["splits"]["train"]["tokens"]
  lines = list(natural_corpus.format_report(report, params=1000))
  assert lines[-1].startswith("32x Chinchilla of 1,000 non-embedding params = 640,000 tokens")
