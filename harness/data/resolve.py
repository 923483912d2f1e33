"""Where a goldset comes from: a folder, a bundled or local name (``demo``), or an MTEB task (``mteb:SciFact``).

One rule for every path: a path on the command line is relative to the working directory; a path
written in a file (a ladder, a training file, a manifest's ``ood``) is relative to that file's folder
(``base``). Names need no path: a bundled goldset (the folders under tunebench's ``goldsets/``) works
anywhere, and on the command line a folder under ``./goldsets`` works by its name too.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.data.goldset import MANIFEST, Goldset, Manifest, load_goldset, read_manifest
from harness.data.mteb_task import load_mteb_goldset
from harness.environment import shipped
from harness.errors import GoldsetError, did_you_mean

BUNDLED_DIR = shipped("goldsets")
LOCAL_DIR = "goldsets"  # on the command line, ./goldsets/<name> is found by its name


def resolve_goldset(source: str, base: Path | None = None) -> Goldset:
    """Load a goldset from a folder, a bundled or local name (``demo`` = ``goldsets/demo``) or ``mteb:Task``.

    ``base`` is the folder of the file that named ``source`` (None: the command line).
    """
    if source.startswith("mteb:"):
        return load_mteb_goldset(source.removeprefix("mteb:"))
    return load_goldset(find_goldset(source, base))


def resolve_with_split(source: str, base: Path | None = None) -> tuple[Goldset, str | None]:
    """A goldset and a split from ``GOLDSET:SPLIT`` (``mteb:Task:SPLIT`` too), or ``(goldset, None)``."""
    head, sep, split = source.rpartition(":")
    if sep and head and head != "mteb" and not Path(source).exists():
        return resolve_goldset(head, base), split
    return resolve_goldset(source, base), None


def find_goldset(source: str, base: Path | None = None) -> Path:
    """The folder a goldset source names, or a :class:`GoldsetError` listing the names that exist."""
    for candidate in _candidates(source, base):
        if candidate.is_dir():
            return candidate
    raise GoldsetError(_not_found(source, base))


def goldset_name(source: str, base: Path | None = None) -> str:
    """The name records carry for ``source`` (a folder's manifest ``name``, else the folder's name; an
    MTEB task's name), read without loading the goldset. A source that is no folder here is taken as
    a name: records outlive the folders they were scored on."""
    if source.startswith("mteb:"):
        return source.removeprefix("mteb:")
    folder = next((c for c in _candidates(source, base) if c.is_dir()), None)
    if folder is None:
        return source
    return _manifest(folder).name or folder.resolve().name


def goldset_splits(folder: Path) -> list[str]:
    """A goldset folder's split names, read without loading it (the manifest's ``splits``, else ``qrels/*.tsv``)."""
    listed = _manifest(folder).splits
    return listed if listed is not None else sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


def _manifest(folder: Path) -> Manifest:
    return read_manifest(folder) if (folder / MANIFEST).is_file() else Manifest()


def _candidates(source: str, base: Path | None) -> list[Path]:
    """Where ``source`` may be, in order: a path from ``base`` (a file's folder) or the working directory;
    on the command line a folder under ./goldsets by its name; then a bundled name."""
    path = Path(source).expanduser()
    if base is not None:
        found = [path if path.is_absolute() else base / path]
    else:
        found = [path, Path.cwd() / LOCAL_DIR / source]
    return found + [BUNDLED_DIR / source]


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _not_found(source: str, base: Path | None) -> str:
    """What exists instead: bundled names, the user's own ./goldsets folders, and the path the user meant."""
    bundled = _names(BUNDLED_DIR)
    local = [] if base is not None else [f"{LOCAL_DIR}/{n}" for n in _names(Path.cwd() / LOCAL_DIR)]
    where = f"a folder (relative to {base}, the folder of the file that names it)" if base is not None else "a folder"
    parts = [f"bundled names: {', '.join(bundled) or 'none'}"] + ([f"folders in ./{LOCAL_DIR}: {', '.join(local)}"] if local else [])
    hint = did_you_mean(source, bundled + local) or did_you_mean(Path(source).name, bundled)
    meant = next((c for c in _candidates(source, None)[:2] if c.is_dir()), None) if base is not None else None
    if meant is not None:  # found from the working directory: the file meant it from there
        hint = f" A path in a file is relative to that file's folder: write '{Path(os.path.relpath(meant.resolve(), base.resolve())).as_posix()}'."
    return f"goldset '{source}' is not {where}, a bundled name or mteb:<Task> ({'; '.join(parts)}).{hint}"
