"""Run records as MTEB results, so a rung's scores can sit beside the MTEB leaderboard's (``bench export --format mteb``).

Layout, that of the MTEB results repository's ``results/`` folder (``mteb.ResultCache(<its parent>)`` reads it)::

    <out>/<model, "/" as "__">/no_revision_available/<Task>.json       one mteb TaskResult: its splits, main_score
    <out>/<model, "/" as "__">/no_revision_available/model_meta.json   the mteb ModelMeta (mteb's own when it knows the model)

The objects are mteb's own, so mteb validates them as they are built and reads them back; the numbers are
tunebench's (ranx, equal to the pytrec_eval numbers MTEB computes: tests/test_reproduction.py), written
unrounded. ``mteb.ResultCache.save_to_cache`` is not used: it makes folder names of unchecked names, writes
in place (a killed export would leave half a file), rounds to 6 decimals and adds a ``run_settings.jsonl``
of this machine's package versions as if mteb had run here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from harness.decide.views import tuning_splits
from harness.errors import BenchError
from harness.records import RunRecord, is_plain_name, safe_name, write_atomic

REVISION = "no_revision_available"  # mteb's folder for a model of unknown revision (ResultCache.get_task_result_path); records name none
MTEB_METRICS = ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")
"""ranx metrics that MTEB's retrieval evaluator reports at a cut-off, as ``<name>_at_<k>`` (mteb's ``make_score_dict``);
the others (f1, dcg, bpref, ...) have no MTEB name and are left out."""
LOCAL_LANGUAGES = ["eng-Latn"]  # a goldset.toml names no language; the bundled goldsets are English
LOCAL_MAIN_SCORE = "ndcg_at_10"  # MTEB's main score of retrieval tasks
MODEL_FILE = "model_meta.json"


@dataclass(frozen=True)
class Task:
    """What MTEB calls the goldset: name, dataset revision, the subset scored and its languages, the main score."""

    name: str
    revision: str
    subset: str
    languages: list[str]
    main_score: str
    in_mteb: bool


@dataclass
class Export:
    """The files to write (paths relative to the export folder, each model's ``model_meta.json`` after its
    task files) and one line per thing the user should know about them."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def mteb_metric(name: str) -> str | None:
    """MTEB's name for a tunebench metric (``ndcg@10`` is ``ndcg_at_10``), None when MTEB reports no such metric."""
    base, at, cutoff = name.partition("@")
    return f"{base}_at_{cutoff}" if at and base in MTEB_METRICS else None


def model_of(record: RunRecord) -> str | None:
    """The one published model a record's scores belong to: a dense rung's encoder. None for the other
    kinds, pipelines (BM25, fusion, reranking, chunking) or models the ladder made (adapters, fine-tunes)."""
    return (record.rung.config.get("encoder") or {}).get("model") if record.rung.kind == "dense" else None


def build_export(records: list[RunRecord]) -> Export:
    """The MTEB result files of ``records`` (the latest per goldset, split and rung, as the views show)."""
    export = Export()
    claimed: dict[str, str] = {}
    by_rung: dict[str, list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.status == "ok":
            by_rung[r.rung.name].append(r)
    tasks: dict[str, Task] = {}
    for rung, mine in by_rung.items():
        model, kept = _one_model(rung, mine, export.notes)
        folder = _model_folder(model, rung)
        if folder in claimed:
            raise BenchError(f"rungs '{claimed[folder]}' and '{rung}' both export as model '{model or rung}' (one model with other settings); "
                             f"export one of them at a time with -r")
        claimed[folder] = rung
        files = {}
        for name, group in _by_goldset(kept, export.notes).items():
            task = tasks[name] = tasks.get(name) or _task(group[0])
            if (result := _task_result(group, task, export.notes)) is not None:
                files[f"{folder}/{REVISION}/{_task_file(task)}"] = result.model_dump_json(indent=2)
        if files:
            export.files |= files | {f"{folder}/{REVISION}/{MODEL_FILE}": _model_meta(model or rung, known=model is not None, notes=export.notes)}
    export.notes += [f"goldset '{name}' is not an MTEB task: exported as task '{name}' (languages assumed {', '.join(LOCAL_LANGUAGES)}), "
                     "which matches nothing on the MTEB leaderboard" for name, task in tasks.items() if not task.in_mteb]
    return export


def _one_model(rung: str, records: list[RunRecord], notes: list[str]) -> tuple[str | None, list[RunRecord]]:
    """The model of the rung's newest record, and the records scored with it (the others are noted and left out)."""
    model = model_of(max(records, key=lambda r: r.created_at))
    other = [r for r in records if model_of(r) != model]
    if other:
        notes.append(f"rung '{rung}': {len(other)} older record(s) scored another model than its newest ({model}) left out; re-run them")
    if model is None:
        notes.append(f"rung '{rung}' ({records[0].rung.kind}) is not one published model: exported as model '{rung}'")
    return model, [r for r in records if model_of(r) == model]


def _model_folder(model: str | None, rung: str) -> str:
    """A model's folder: MTEB's name for it (``/`` as ``__``) when every part is a plain name, so it never
    leaves the export folder; any other model name, and a rung's name, through :func:`safe_name`."""
    parts = (model or "").split("/")
    return "__".join(parts) if model and all(is_plain_name(p) for p in parts) else safe_name(model or rung)


def _by_goldset(records: list[RunRecord], notes: list[str]) -> dict[str, list[RunRecord]]:
    """The records of each goldset that agree with its newest on the goldset's content (fingerprint), less
    the splits the rung was tuned or trained on (their scores flatter it); what is left out is noted."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[r.goldset.name].append(r)
    out: dict[str, list[RunRecord]] = defaultdict(list)
    for name, group in groups.items():
        newest = max(group, key=lambda r: r.created_at)
        for r in group:
            if why := _left_out(r, newest):
                notes.append(f"rung '{r.rung.name}' on '{name}': split '{r.goldset.split}' left out ({why})")
            else:
                out[name].append(r)
    return out


def _left_out(record: RunRecord, newest: RunRecord) -> str | None:
    if record.goldset.fingerprint != newest.goldset.fingerprint:
        return "scored on another version of the goldset than its newest record; re-run it"
    if record.goldset.ood_of is None and record.goldset.split in tuning_splits([record]):
        return "the rung was tuned or trained on it"
    return None


def _task_result(records: list[RunRecord], task: Task, notes: list[str]):
    """One goldset's records as an mteb ``TaskResult``, a split each; None when no record has the task's main score."""
    from mteb import __version__ as mteb_version
    from mteb.results import TaskResult

    metric = task.main_score.replace("_at_", "@")
    scored = [r for r in records if metric in r.metrics]
    if len(scored) < len(records):
        notes.append(f"rung '{records[0].rung.name}' on '{records[0].goldset.name}': records without {metric}, the task's main score, left out; "
                     "add it to the ladder's metrics")
    if not scored:
        return None
    return TaskResult(
        dataset_revision=task.revision,
        task_name=task.name,
        mteb_version=mteb_version,  # the schema written is this mteb's; the scores are tunebench's
        scores={r.goldset.split: [_scores(r, task)] for r in scored},
        evaluation_time=sum(r.timings.total_s for r in scored),
        date=datetime.fromisoformat(max(r.created_at for r in scored)),
    )


def _task_file(task: Task) -> str:
    """An MTEB task's own name as the file name; a goldset's name through :func:`safe_name`."""
    return f"{task.name if task.in_mteb and is_plain_name(task.name) else safe_name(task.name)}.json"


def _task(record: RunRecord) -> Task:
    """An ``mteb:<Task>`` goldset is that MTEB task (its name, revision, languages and main score); any other
    is a task of its own name, its revision the goldset's content fingerprint."""
    from harness.data.mteb_task import mteb_task, pick_subset

    if not record.goldset.source.startswith("mteb:"):
        return Task(record.goldset.name, record.goldset.fingerprint, "default", LOCAL_LANGUAGES, LOCAL_MAIN_SCORE, in_mteb=False)
    meta = mteb_task(record.goldset.source.removeprefix("mteb:")).metadata
    languages = meta.hf_subsets_to_langscripts
    subset = pick_subset(list(languages))
    return Task(meta.name, meta.revision, subset, list(languages.get(subset, meta.languages)), meta.main_score, in_mteb=True)


def _scores(record: RunRecord, task: Task) -> dict:
    """One split's scores under MTEB's names, with ``main_score``, ``hf_subset`` and ``languages``."""
    scores = {mteb_metric(m): v for m, v in record.metrics.items() if mteb_metric(m)}
    return {**scores, "main_score": scores[task.main_score], "hf_subset": task.subset, "languages": task.languages}


def _model_meta(name: str, *, known: bool, notes: list[str]) -> str:
    """``model_meta.json``: mteb's registry entry for a model it knows (revision set to unknown: the records
    name none), else an empty ModelMeta with the name."""
    import json

    import mteb
    from mteb.models import ModelMeta

    meta = None
    if known:
        try:
            meta = mteb.get_model_meta(name)
        except (KeyError, ValueError):
            notes.append(f"model '{name}' is not in mteb's model registry: its results match a leaderboard model only if that is its MTEB name")
    meta = (meta or ModelMeta.create_empty({"name": name})).model_copy(update={"revision": REVISION})
    return json.dumps(meta.to_dict(), default=str, indent=4)  # as ResultCache.save_to_cache writes it


def write_export(export: Export, out: Path, *, force: bool) -> None:
    """Write the files under ``out``: a missing or empty folder, or with ``force`` one that holds files (those of
    the same names are replaced, the others kept: a clone of the MTEB results repository). Each file is written
    whole or not at all, and a model's ``model_meta.json``, without which mteb ignores a folder, last."""
    check_folder(out, force=force)
    try:
        for relative, text in export.files.items():
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode())
    except OSError as exc:
        raise BenchError(f"cannot write the export into '{out}' ({exc.strerror}); pass a writable -o folder") from exc


def check_folder(out: Path, *, force: bool) -> None:
    """An error unless ``out`` is missing, an empty folder, or (``force``) a folder."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"-o '{out}' is a file; pass a folder (it is made if missing)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BenchError(f"-o '{out}' is not empty; pass --force to write into it (files of the same names are replaced), or a new folder")
