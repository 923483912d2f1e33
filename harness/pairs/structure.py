"""Document structure: Markdown, reStructuredText and HTML files read into outlines of sections.

Each format is read by a real parser: Markdown by markdown-it-py (CommonMark, with tables),
reStructuredText by docutils (with Sphinx's directives kept as text and includes followed:
:mod:`harness.pairs.rst`), HTML by Python's :mod:`html.parser`. All three feed the same
:class:`Outline`: the document's title and its sections in order, each with its heading, level,
parent and paragraphs (a paragraph, list, table or code block is one paragraph). A document whose
only top-level heading opens it (a Markdown ``# Title``, an rST title) takes that heading as title.

Headings that say where a reader is rather than what a section is about (:data:`BOILERPLATE_HEADINGS`,
one-word :data:`GENERIC_HEADINGS`, version numbers and dates) are never queries: no user searches
for "Changelog" or "1.2.0" (:func:`is_boilerplate`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path

from harness.errors import ConfigError

FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".html": "html", ".htm": "html"}
SKIP_DIRS = {"node_modules", "__pycache__", "venv", "site-packages", "build", "dist"}
# Compared after :func:`harness.training.leakage.normalise` (case, accents and punctuation dropped)
# and a leading section number ("2.1 License").
BOILERPLATE_HEADINGS = frozenset(
    {
        "credits", "changelog", "change log", "changes", "release notes", "history", "news", "whats new",
        "download", "downloads", "license", "licence", "licensing", "copyright",
        "installation", "install", "installing", "setup",
        "table of contents", "contents", "toc", "contributing", "contributors", "how to contribute",
        "code of conduct", "acknowledgements", "acknowledgments", "authors", "maintainers", "sponsors",
        "support", "contact", "security", "citation", "how to cite", "see also", "links", "references",
        "footnotes", "bibliography", "todo", "roadmap", "readme", "index",
    }
)  # fmt: skip
# A heading of one of these words alone is too generic to be a query (it matches every document).
GENERIC_HEADINGS = frozenset(
    {
        "overview", "introduction", "intro", "summary", "background", "usage", "examples", "example",
        "notes", "note", "faq", "requirements", "prerequisites", "about", "details", "misc",
        "other", "general", "appendix", "conclusion", "discussion", "description", "features",
        "configuration", "options", "api", "reference", "documentation", "docs", "home", "start",
        "tutorial", "guide", "help", "resources", "more", "next", "previous", "top", "main",
    }
)  # fmt: skip


@dataclass
class Section:
    heading: str
    level: int  # 0 for the document itself (the text before its first heading)
    parent: int | None  # index of the enclosing section in Outline.sections
    paragraphs: list[str] = field(default_factory=list)

    @property
    def body(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass
class ReadLog:
    """What a reader did with markup it does not render: reStructuredText's unknown directives kept
    as text (name -> times), includes followed, and what was skipped (reason -> where)."""

    kept_as_text: Counter[str] = field(default_factory=Counter)
    followed: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def add(self, other: ReadLog) -> None:
        self.kept_as_text.update(other.kept_as_text)
        self.followed += other.followed
        for reason, where in other.skipped.items():
            self.skipped.setdefault(reason, []).extend(where)

    def counts(self) -> dict[str, int]:
        return {
            "directives_kept_as_text": self.kept_as_text.total(),
            "includes_followed": len(self.followed),
            "includes_skipped": sum(map(len, self.skipped.values())),
        }

    def warnings(self) -> list[str]:
        """One line per reason an include was skipped, naming the first few."""
        return [
            f"{len(where)} include(s) skipped, {reason}: {', '.join(where[:5])}{' ...' if len(where) > 5 else ''}"
            for reason, where in self.skipped.items()
        ]


@dataclass
class Outline:
    """A document's title and sections; ``sections[0]`` is the document itself. ``log`` says what the
    reader kept, followed and skipped."""

    title: str
    sections: list[Section] = field(default_factory=list)
    log: ReadLog = field(default_factory=ReadLog)

    def __post_init__(self) -> None:
        if not self.sections:
            self.sections.append(Section(self.title, 0, None))

    def heading(self, level: int, text: str) -> None:
        """Open a section under the nearest open section of a lower level."""
        parent = len(self.sections) - 1
        while parent and self.sections[parent].level >= level:
            parent = self.sections[parent].parent
        self.sections.append(Section(" ".join(text.split()), level, parent))

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.sections[-1].paragraphs.append(text.strip())

    def promoted(self) -> Outline:
        """The outline with a lone opening top-level heading as its title (and its section as the root)."""
        top = [i for i, s in enumerate(self.sections) if s.parent == 0]
        if self.sections[0].paragraphs or top != [1]:
            return self
        root = self.sections[1]
        rest = [Section(s.heading, s.level, s.parent - 1, s.paragraphs) for s in self.sections[2:]]
        return Outline(root.heading, [Section(root.heading, 0, None, root.paragraphs), *rest], self.log)


def document_files(paths: Iterable[Path | str]) -> list[tuple[Path, str, Path]]:
    """``(file, name, folder)`` of every Markdown, rST and HTML file under ``paths`` (files or folders;
    hidden and build folders skipped); ``name``, used in ids, is the path from the folder given, that
    folder included (``docs/guide.md``), or a file's own name; ``folder`` is the folder given, or a
    file's own folder."""
    found = []
    for root in map(Path, paths):
        if root.is_file():
            found.append((root, root.name, root.parent))
            continue
        if not root.is_dir():
            raise ConfigError(f"'{root}' is neither a file nor a folder")
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            hidden = any(part.startswith(".") or part in SKIP_DIRS for part in relative.parts[:-1])
            if path.is_file() and path.suffix.lower() in FORMATS and not hidden:
                found.append((path, (Path(root.resolve().name) / relative).as_posix(), root))
    return found


def parse_file(path: Path, include_root: Path | None = None) -> Outline:
    """The outline of one document; its format comes from the file's suffix. A reStructuredText
    ``.. include::`` may read files under ``include_root`` only (default: the document's folder)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"'{path}': not a document format tunebench reads ({', '.join(sorted(FORMATS))})")
    text = path.read_text(encoding="utf-8", errors="replace")
    outline = Outline(path.stem)
    if kind == "rst":
        from harness.pairs.rst import read_rst

        read_rst(text, outline, path, include_root or path.parent)
    else:
        {"markdown": _markdown, "html": _html}[kind](text, outline)
    return outline.promoted()


def _markdown(text: str, outline: Outline) -> None:
    from markdown_it import MarkdownIt

    parts: list[str] = []
    level = 0  # inside a heading when > 0
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "inline" and level:
            outline.heading(level, _inline_text(token))
        elif token.type == "inline":
            parts.append(_inline_text(token))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content.strip())
        if token.type == "heading_close":
            level = 0
        elif token.level == 0 and token.nesting <= 0 and parts:  # a top-level block ended
            outline.paragraph("\n".join(parts))
            parts = []


def _inline_text(token) -> str:
    """Plain text of an inline token: markup dropped, link and code text kept."""
    pieces = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append(" ")
    return "".join(pieces).strip()


def _html(text: str, outline: Outline) -> None:
    reader = _HtmlReader(outline)
    reader.feed(text)
    reader.close()


class _HtmlReader(HTMLParser):
    """Headings open sections; block elements end paragraphs; scripts, styles and navigation are skipped."""

    BLOCKS = {"p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption", "tr", "div", "section", "article", "table", "ul", "ol"}
    HIDDEN = {"script", "style", "nav", "noscript", "template", "head"}
    HEADINGS = {f"h{n}": n for n in range(1, 7)}

    def __init__(self, outline: Outline):
        super().__init__(convert_charrefs=True)
        self.outline = outline
        self.text: list[str] = []
        self.hidden = 0
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag == "title":
            self.in_title = True
        elif tag in self.BLOCKS or tag in self.HEADINGS:
            self._flush()

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in self.HEADINGS:
            self.outline.heading(self.HEADINGS[tag], "".join(self.text))
            self.text = []
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if self.in_title and data.strip():
            self.outline.title = self.outline.sections[0].heading = " ".join(data.split())
        elif not self.hidden:
            self.text.append(data)

    def close(self):
        super().close()
        self._flush()

    def _flush(self) -> None:
        self.outline.paragraph(" ".join("".join(self.text).split()))
        self.text = []


def is_boilerplate(heading: str) -> bool:
    """Whether a heading is no query: in :data:`BOILERPLATE_HEADINGS`, one word of
    :data:`GENERIC_HEADINGS` or of under three letters, no word at all (a version, a date, a number),
    or a version named as one ("Version 8.1.7", "Release 2.0": a changelog's headings)."""
    from harness.training.leakage import normalise

    tokens = normalise(heading).split()
    while tokens and re.fullmatch(r"v?\d+", tokens[0]):  # "2.1 License", "v1.2.0"
        tokens = tokens[1:]
    words = [t for t in tokens if re.search(r"[a-z]", t) and not re.fullmatch(r"v\d+", t)]
    if not words:
        return True
    text = " ".join(tokens)
    if words in (["version"], ["release"]) and len(tokens) > 1:
        return True
    return text in BOILERPLATE_HEADINGS or (len(words) == 1 and (text in GENERIC_HEADINGS or len(text) < 3))


def from_structure(paths: Iterable[Path | str], *, chunk_words: int = 200, overlap: int = 40, min_words: int = 5, include_root: Path | str | None = None):
    """Pairs and a corpus from documents' structure (returns a :class:`harness.pairs.pairset.PairSet`).

    The corpus is every section's body cut into windows of ``chunk_words`` words sharing ``overlap``
    (bodies under ``min_words`` words are skipped and counted); ids are ``<file>#<section>`` with
    ``:<n>`` for a section's n-th chunk. Queries, with their judgements:

    - heading <-> its section's body: every chunk of the section, grade 2;
    - title <-> summary: the document's title and its first chunk (the first paragraph on), grade 2;
    - section <-> subsection: a heading and the first chunk of each direct subsection, grade 1.

    Boilerplate and generic headings (:func:`is_boilerplate`) are no queries; their sections stay
    in the corpus, unjudged, as every other chunk no query judges (a builder keeps the corpus it
    was given). In the goldset every chunk carries its document's title (its opening top-level
    heading, HTML ``<title>`` or file name), as a search over the documents would see it; in the pair
    file positives are the chunk's text alone, since the title query's positive would otherwise
    repeat it. A heading that several sections share is one query with all of their chunks.

    In reStructuredText a directive docutils does not know (Sphinx's ``.. code-block``'s cousins,
    ``.. click:example::``) is kept as text, and ``.. include::`` is followed to files under
    ``include_root`` (default: the folder given, or a file's own folder); the counts say how many
    were kept and followed, and a warning names each include skipped and why.
    """
    from harness.pairs.pairset import assemble

    if overlap >= chunk_words:
        raise ConfigError(f"the overlap ({overlap}) must be smaller than the chunk size ({chunk_words} words)")
    corpus, titles, queries, judged = {}, {}, {}, {}
    counts = dict.fromkeys(["files", "sections", "short_sections", "chunks", "boilerplate_headings"], 0)
    log = ReadLog()
    for path, name, folder in document_files(paths):
        outline = parse_file(path, Path(include_root or folder))
        log.add(outline.log)
        chunks = _section_chunks(outline, name, chunk_words, overlap, min_words, corpus, counts)
        titles.update(dict.fromkeys((c for ids in chunks for c in ids), outline.title))
        _judge(outline, chunks, queries, judged)
        counts["boilerplate_headings"] += sum(is_boilerplate(s.heading) for s in outline.sections)
        counts["files"] += 1
    if not counts["files"]:
        raise ConfigError(f"no Markdown, reStructuredText or HTML files in {', '.join(map(str, paths))}")
    built = assemble(corpus, queries, judged, "structure", counts | log.counts())
    built.corpus = {d: replace(doc, title=titles[d]) for d, doc in built.corpus.items()}
    built.warnings = log.warnings()
    return built


def _section_chunks(outline: Outline, name: str, size: int, overlap: int, min_words: int, corpus: dict, counts: dict) -> list[list[str]]:
    """Each section's chunk ids (empty for a short body), adding the chunks to ``corpus``."""
    from harness.data.goldset import Document
    from harness.retrieval.chunking import windows, word_spans

    ids, slugs = [], set()
    for section in outline.sections:
        counts["sections"] += 1
        body = section.body
        spans = word_spans([body])[0]
        if len(spans) < min_words:
            counts["short_sections"] += 1
            ids.append([])
            continue
        base = _unique(f"{name}#{_slug(section.heading)}" if section.level else name, slugs)
        cuts = windows(spans, size, overlap)
        chunk_ids = [base if n == 0 else f"{base}:{n + 1}" for n in range(len(cuts))]
        corpus.update((chunk_id, Document("", body[start:end])) for chunk_id, (start, end) in zip(chunk_ids, cuts))
        counts["chunks"] += len(chunk_ids)
        ids.append(chunk_ids)
    return ids


def _judge(outline: Outline, chunks: list[list[str]], queries: dict, judged: dict) -> None:
    """Add the three kinds of (query, chunk, grade) judgements of one document (none for a
    boilerplate heading or title)."""
    from harness.pairs.pairset import text_id
    from harness.training.leakage import normalise

    def judge(query: str, chunk_ids: list[str], grade: int) -> None:
        if not chunk_ids or not normalise(query) or is_boilerplate(query):
            return
        qid = text_id("q", normalise(query))
        queries.setdefault(qid, query)
        for chunk_id in chunk_ids:
            judged.setdefault(qid, {})[chunk_id] = max(grade, judged.get(qid, {}).get(chunk_id, 0))

    judge(outline.title, next((c[:1] for c in chunks if c), []), 2)
    for index, section in enumerate(outline.sections):
        if section.level:
            judge(section.heading, chunks[index], 2)
        if section.parent:
            judge(outline.sections[section.parent].heading, chunks[index][:1], 1)


def _slug(heading: str) -> str:
    from harness.training.leakage import normalise

    return normalise(heading).replace(" ", "-") or "section"


def _unique(candidate: str, seen: set[str]) -> str:
    name, n = candidate, 1
    while name in seen:
        n += 1
        name = f"{candidate}-{n}"
    seen.add(name)
    return name
