"""Where a goldset comes from: a folder, a bundled or local name (``demo``), or an MTEB task (``mteb:SciFact``)."""

from __future__ import annotations

from pathlib import Path

from harness.data.goldset import Goldset, load_goldset
from harness.data.mteb_task import load_mteb_goldset
from harness.errors import GoldsetError, did_you_mean

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "goldsets"


def resolve_goldset(source: str, base: Path | None = None) -> Goldset:
    """Load a goldset from a folder, a bundled or local name (``demo`` = ``goldsets/demo``) or ``mteb:Task``.

    ``base`` (a ladder file's folder) is searched first for relative folders.
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
    path = Path(source).expanduser()
    candidates = ([base / path] if base and not path.is_absolute() else []) + [path]
    candidates += [root / source for root in (Path.cwd() / "goldsets", BUNDLED_DIR)]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    names = sorted({p.name for root in (Path.cwd() / "goldsets", BUNDLED_DIR) if root.is_dir() for p in root.iterdir() if p.is_dir()})
    raise GoldsetError(
        f"goldset '{source}' is not a folder, a bundled name ({', '.join(names) or 'none'}) or mteb:<Task>.{did_you_mean(source, names)}"
    )
