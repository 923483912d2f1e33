"""reStructuredText read by docutils, Sphinx sources included, into a document outline.

docutils knows none of Sphinx's directives: alone it turns ``.. click:example::``, ``.. code-block``'s
cousins, ``.. versionadded::`` and every extension's directive into an error and drops the text
(click 8.1.7's docs lost 144 blocks, nearly every code example). Here a directive docutils does not
know keeps what its author wrote in it (arguments and content, options dropped) as a literal block:
code is text a user searches for. ``.. include::`` is followed relative to the including file, as
Sphinx does, but only to files under an include root and never in a loop; what is not followed is
logged with the reason. The lookup is swapped for the parse only, as Sphinx's own
``sphinx.util.docutils.sphinx_domains`` does.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from docutils import nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, DirectiveError, directives
from docutils.parsers.rst.directives.misc import Include

SETTINGS = {"report_level": 5, "halt_level": 5, "doctitle_xform": False, "file_insertion_enabled": False, "raw_enabled": False}
SKIPPED_NODES = (nodes.title, nodes.comment, nodes.system_message, nodes.target, nodes.substitution_definition, nodes.problematic)


def read_rst(text: str, outline, path: Path, root: Path) -> None:
    """Add the sections and paragraphs of ``text`` (the file ``path``) to ``outline`` (a
    :class:`harness.pairs.structure.Outline`); ``.. include::`` reads files under ``root`` only, and
    ``outline.log`` counts what was kept as text, followed and skipped."""
    settings = SETTINGS | {"tunebench": _Includes(root.resolve(), outline.log)}
    with _sphinx_tolerant():
        doctree = publish_doctree(text, source_path=str(path), settings_overrides=settings)
    _children(doctree, 1, outline)


def _children(node, level: int, outline) -> None:
    for child in node.children:
        if isinstance(child, nodes.section):
            outline.heading(level, child[0].astext())
            _children(child, level + 1, outline)
        elif isinstance(child, nodes.Element) and not isinstance(child, SKIPPED_NODES):
            outline.paragraph(child.astext())


@contextmanager
def _sphinx_tolerant():
    """docutils' directive lookup, for one parse, with :class:`_FollowedInclude` for ``include`` and
    :class:`_KeptAsText` for every directive it does not know."""
    known = directives.directive

    def lookup(name, language, document):
        found, messages = known(name, language, document)
        return (_FollowedInclude if found is Include else found or _KeptAsText), messages

    directives.directive = lookup
    try:
        yield
    finally:
        directives.directive = known


class _AnyOptions(dict):
    """An option spec taking every option: an unknown directive's options are unknown too."""

    def __missing__(self, key):
        return directives.unchanged

    def __bool__(self) -> bool:  # docutils parses options only when the spec is truthy
        return True


class _KeptAsText(Directive):
    """A directive docutils does not know: its arguments and content as a literal block."""

    optional_arguments = 1
    final_argument_whitespace = True  # ``.. versionadded:: 8.0 The x parameter.`` is one argument
    option_spec = _AnyOptions()
    has_content = True

    def run(self) -> list:
        text = "\n".join([*self.arguments, *self.content]).strip()
        if text:
            self.state.document.settings.tunebench.log.kept_as_text[self.name] += 1
        return [nodes.literal_block(text, text)] if text else []


class _FollowedInclude(Include):
    """docutils' ``include``, allowed to read one file: under the include root and not in a loop."""

    def run(self) -> list:
        includes = self.state.document.settings.tunebench
        source = Path(self.state_machine.get_source_and_line(self.lineno)[0]).resolve()
        written = directives.path(self.arguments[0])
        where = f"{includes.shown(source)}: '{written}'"
        if not written.startswith("<"):  # <isonum.txt>: one of docutils' own files
            target = (source.parent / written).resolve()
            reason = includes.refusal(source, target)
            if reason:
                includes.log.skipped.setdefault(reason, []).append(where)
                return []
            self.arguments[0] = str(target)  # read exactly the file checked
        return self._insert(includes, where)

    def _insert(self, includes, where: str) -> list:
        settings = self.state.document.settings
        settings.file_insertion_enabled = True  # for this file only: csv-table and raw stay unable to read files
        try:
            inserted = super().run()
        except DirectiveError as error:
            includes.log.skipped.setdefault(f"unreadable ({' '.join(error.msg.split())})", []).append(where)
            return []
        finally:
            settings.file_insertion_enabled = False
        includes.log.followed.append(where)
        return inserted


class _Includes:
    """Where one document's includes may read (under ``root``), and which file included which."""

    def __init__(self, root: Path, log):
        self.root, self.log = root, log
        self.parents: dict[Path, Path] = {}

    def shown(self, path: Path) -> str:
        """``path`` as the user knows it: from the include root's parent (``docs/changes.rst``)."""
        return path.relative_to(self.root.parent).as_posix() if path.is_relative_to(self.root) else str(path)

    def refusal(self, source: Path, target: Path) -> str | None:
        """Why ``source`` may not include ``target`` (None: it may)."""
        if not target.is_relative_to(self.root):
            return f"outside {self.root} (--include-root DIR follows includes under DIR)"
        if not target.is_file():
            return "not found"
        chain = [source]
        while chain[-1] in self.parents:
            chain.append(self.parents[chain[-1]])
        if target in chain:
            return "a loop (the file includes itself)"
        self.parents[target] = source
        return None
