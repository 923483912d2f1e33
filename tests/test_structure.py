"""Document structure: Markdown, reStructuredText and HTML outlines, and `bench pairs from-structure`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.data.goldset import load_goldset
from harness.data.pair_files import read_pair_file
from harness.errors import ConfigError
from harness.pairs.structure import from_structure, parse_file

REPO = Path(__file__).resolve().parents[1]

MARKDOWN = """# Beekeeping

A short guide to **keeping bees** through the year, from [spring](#spring) to winter.

## Pests

Pests weaken a colony.

### Varroa mites

Oxalic acid kills `varroa` mites in broodless colonies.

| month | treatment |
|---|---|
| December | oxalic acid |

### Wax moth

Freezing frames kills wax moth eggs and larvae.

## Harvest

```
extract --frames 10
```
"""

RST = """Beekeeping
==========

A short guide to keeping bees through the year.

Pests
-----

Pests weaken a colony.

Varroa mites
~~~~~~~~~~~~

Oxalic acid kills varroa mites in broodless colonies.

.. note:: Treat in December.

Harvest
-------

- spin the frames
- filter the honey
"""

HTML = """<html><head><title>Beekeeping</title><style>p {color: red}</style></head><body>
<nav><a href="/">home</a></nav>
<p>A short guide to keeping bees through the year.</p>
<h2>Pests</h2><p>Pests weaken a colony.</p>
<h3>Varroa mites</h3><p>Oxalic acid kills varroa mites &amp; more in broodless colonies.</p>
<h2>Harvest</h2><ul><li>spin the frames</li><li>filter the honey</li></ul>
<script>var x = 1;</script>
</body></html>
"""


def outline_of(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    outline = parse_file(tmp_path / name)
    return outline.title, [(s.heading, s.level, s.parent, s.paragraphs) for s in outline.sections]


def test_markdown_outline_keeps_text_and_drops_markup(tmp_path):
    title, sections = outline_of(tmp_path, "bees.md", MARKDOWN)
    assert title == "Beekeeping"
    assert sections == [
        ("Beekeeping", 0, None, ["A short guide to keeping bees through the year, from spring to winter."]),
        ("Pests", 2, 0, ["Pests weaken a colony."]),
        ("Varroa mites", 3, 1, ["Oxalic acid kills varroa mites in broodless colonies.", "month\ntreatment\nDecember\noxalic acid"]),
        ("Wax moth", 3, 1, ["Freezing frames kills wax moth eggs and larvae."]),
        ("Harvest", 2, 0, ["extract --frames 10"]),
    ]


def test_rst_and_html_outlines_match_the_markdown_shape(tmp_path):
    title, sections = outline_of(tmp_path, "bees.rst", RST)
    assert title == "Beekeeping"
    assert [(h, p) for h, _, p, _ in sections] == [("Beekeeping", None), ("Pests", 0), ("Varroa mites", 1), ("Harvest", 0)]
    assert sections[2][3] == ["Oxalic acid kills varroa mites in broodless colonies.", "Treat in December."]
    assert sections[3][3] == ["spin the frames\n\nfilter the honey"]
    title, sections = outline_of(tmp_path, "bees.html", HTML)
    assert title == "Beekeeping"
    assert [(h, p) for h, _, p, _ in sections] == [("Beekeeping", None), ("Pests", 0), ("Varroa mites", 1), ("Harvest", 0)]
    assert sections[0][3] == ["A short guide to keeping bees through the year."]  # navigation, style and script skipped
    assert sections[2][3] == ["Oxalic acid kills varroa mites & more in broodless colonies."]
    assert sections[3][3] == ["spin the frames", "filter the honey"]


def test_pairs_heading_body_title_summary_section_subsection(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bees.md").write_text(MARKDOWN)
    (tmp_path / "docs" / ".hidden").mkdir()
    (tmp_path / "docs" / ".hidden" / "skip.md").write_text("# Skip\n\nnever read " * 3)
    built = from_structure([tmp_path / "docs"], min_words=4)
    judged = {built.queries[q]: docs for q, docs in built.qrels.items()}
    assert judged == {
        "Beekeeping": {"docs/bees.md": 2},  # title <-> the first paragraph's chunk
        "Pests": {"docs/bees.md#pests": 2, "docs/bees.md#varroa-mites": 1, "docs/bees.md#wax-moth": 1},  # its body, then its subsections
        "Varroa mites": {"docs/bees.md#varroa-mites": 2},
        "Wax moth": {"docs/bees.md#wax-moth": 2},
    }
    assert built.counts["files"] == 1 and built.counts["short_sections"] == 1  # "Harvest" holds three words of code
    assert built.corpus["docs/bees.md#pests"].text == "Pests weaken a colony." and built.corpus["docs/bees.md#pests"].title == "Beekeeping"
    assert {p.positive for p in built.pairs if p.positive_id == "docs/bees.md#pests"} == {"Pests weaken a colony."}  # pair positives: text alone


def test_long_sections_are_chunked_with_overlap(tmp_path):
    words = [f"w{i}" for i in range(25)]
    (tmp_path / "long.md").write_text("# Long\n\n## Part\n\n" + " ".join(words) + "\n")
    built = from_structure([tmp_path / "long.md"], chunk_words=10, overlap=2)
    chunks = [built.corpus[d].text.split() for d in ("long.md#part", "long.md#part:2", "long.md#part:3")]
    assert chunks == [words[0:10], words[8:18], words[16:25]]
    assert set(built.qrels[next(q for q, t in built.queries.items() if t == "Part")]) == {"long.md#part", "long.md#part:2", "long.md#part:3"}
    with pytest.raises(ConfigError, match="overlap .10. must be smaller than the chunk size"):
        from_structure([tmp_path / "long.md"], chunk_words=10, overlap=10)


def test_from_structure_on_this_repositorys_docs(tmp_path):
    sources = [REPO / "README.md"] + ([REPO / "docs"] if (REPO / "docs").is_dir() else [])
    result = CliRunner().invoke(main, ["pairs", "from-structure", *map(str, sources), "-o", str(tmp_path / "p.jsonl"), "--goldset-out", str(tmp_path / "g"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["counts"]["files"] >= 1 and out["counts"]["queries"] >= 8 and out["pairs"] > 0
    goldset = load_goldset(tmp_path / "g")
    assert set(goldset.splits) == {"train", "dev", "test"} and goldset.manifest.query_origin == "structure"
    pairs = read_pair_file(tmp_path / "p.jsonl")
    assert {p.positive_id.split("#")[0].split("/")[0] for p in pairs} <= {"README.md", "docs"}
    validate = CliRunner().invoke(main, ["goldset", "validate", str(tmp_path / "g")])
    assert validate.exit_code == 0 and "ok:" in validate.output


def test_structure_goldset_splits_never_leak_into_its_pair_file(tmp_path):
    (tmp_path / "docs").mkdir()
    for topic in ("varroa", "swarming", "honey", "wax", "feeding", "queens"):
        sections = "".join(f"## {topic} {part}\n\nAll about the {part} of {topic} in a working apiary.\n\n### {topic} {part} details\n\nMore on {part} and {topic} for the keen.\n\n" for part in ("basics", "tools", "timing"))
        (tmp_path / "docs" / f"{topic}.md").write_text(f"# Guide to {topic}\n\nWhy {topic} matters to every beekeeper.\n\n{sections}")
    out = ["-o", str(tmp_path / "p.jsonl"), "--goldset-out", str(tmp_path / "g"), "--seed", "3"]
    result = CliRunner().invoke(main, ["pairs", "from-structure", str(tmp_path / "docs"), *out])
    assert result.exit_code == 0, result.output
    # each heading's subsection chunk is also its parent's positive: the split keeps them together
    check = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "p.jsonl"), str(tmp_path / "g")])
    assert check.exit_code == 0, check.output


SPHINX = """Options
=======

Boolean flags
-------------

Example:

.. click:example::

    @click.command()
    @click.option('--shout/--no-shout', default=False)
    def info(shout):
        click.echo(shout)

And on the command line:

.. click:run::
    :caption: shouting

    invoke(info, args=['--shout'])

.. versionadded:: 8.0
   The ``--shout`` flag.
"""


def test_rst_keeps_unknown_directives_as_text(tmp_path):
    """Sphinx's directives are unknown to docutils; alone it drops them (click's docs lost nearly
    every code example)."""
    (tmp_path / "options.rst").write_text(SPHINX)
    outline = parse_file(tmp_path / "options.rst")
    assert outline.sections[1].paragraphs == [
        "Example:",
        "@click.command()\n@click.option('--shout/--no-shout', default=False)\ndef info(shout):\n    click.echo(shout)",
        "And on the command line:",
        "invoke(info, args=['--shout'])",  # the option is dropped, the content kept
        "8.0\nThe ``--shout`` flag.",  # Sphinx reads the line after the version as its second argument
    ]
    assert outline.log.kept_as_text == {"click:example": 1, "click:run": 1, "versionadded": 1}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_rst_includes_are_followed_inside_the_folder_and_never_in_a_loop(tmp_path):
    write_tree(tmp_path, {
        "docs/changes.rst": "Changes\n=======\n\n.. include:: ../CHANGES.rst\n",
        "docs/guide/intro.rst": "Intro\n=====\n\n.. include:: ../snippets/hive.rst\n\n.. include:: missing.rst\n",
        "docs/snippets/hive.rst": "A hive holds ten frames of brood and honey.\n\n.. include:: hive.rst\n",
        "CHANGES.rst": "Version 8.1.7\n-------------\n\nFixed the frame counter for deep boxes.\n",
    })  # fmt: skip
    built = from_structure([tmp_path / "docs"], min_words=4)
    assert "docs/guide/intro.rst" in built.corpus and "hive holds ten frames" in built.corpus["docs/guide/intro.rst"].text
    assert (built.counts["includes_followed"], built.counts["includes_skipped"]) == (1, 4)
    assert sorted(built.warnings) == [
        "1 include(s) skipped, not found: docs/guide/intro.rst: 'missing.rst'",
        f"1 include(s) skipped, outside {(tmp_path / 'docs').resolve()} (--include-root DIR follows includes under DIR): docs/changes.rst: '../CHANGES.rst'",
        "2 include(s) skipped, a loop (the file includes itself): docs/snippets/hive.rst: 'hive.rst', docs/snippets/hive.rst: 'hive.rst'",  # read alone and from intro
    ]
    widened = from_structure([tmp_path / "docs"], min_words=4, include_root=tmp_path)
    assert "Fixed the frame counter" in widened.corpus["docs/changes.rst#version-8-1-7"].text
    assert "Version 8.1.7" not in widened.queries.values()  # a changelog's version heading is no query


def test_from_structure_command_reports_directives_and_includes(tmp_path):
    write_tree(tmp_path, {"docs/options.rst": SPHINX, "docs/license.rst": "License\n=======\n\n.. include:: ../LICENSE.rst\n"})
    (tmp_path / "LICENSE.rst").write_text("Redistribution and use in source and binary forms are permitted.\n")
    args = ["pairs", "from-structure", str(tmp_path / "docs"), "-o", str(tmp_path / "p.jsonl"), "--min-words", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"directives kept as text +3\n +includes followed +0\n +includes skipped +1\n", result.stdout)
    assert "warning: 1 include(s) skipped, outside" in result.stderr and "docs/license.rst: '../LICENSE.rst'" in result.stderr
    widened = CliRunner().invoke(main, [*args, "--include-root", str(tmp_path), "--json"])
    assert json.loads(widened.stdout)["counts"]["includes_followed"] == 1 and not widened.stderr
