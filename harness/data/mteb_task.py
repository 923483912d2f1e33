"""Goldsets from elsewhere than a folder: MTEB retrieval tasks (``mteb:SciFact``).

mteb downloads the task's data from the Hugging Face hub on first use (then reads the local
``datasets`` cache). Offline with nothing cached, the user gets one line saying so and what to do
(:class:`HubUnreachable`, which a run skips for an out-of-domain companion and goes on).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from harness.data.goldset import Document, Goldset, Manifest
from harness.errors import GoldsetError, did_you_mean, require

log = logging.getLogger(__name__)

HUB_TIMEOUT_S = 10


class HubUnreachable(GoldsetError):
    """An MTEB task whose data is neither in the local cache nor downloadable (the hub cannot be reached)."""


def mteb_task(name: str):
    """The mteb task ``name`` names (its metadata; nothing is downloaded), or a :class:`GoldsetError` with "did you mean"."""
    return _get_task(require("mteb", extra="mteb"), name)


def pick_subset(subsets: list[str]) -> str:
    """The subset (mteb's ``hf_subset``) a goldset is made of: ``default`` when the task has one, else its first."""
    return "default" if "default" in subsets or not subsets else subsets[0]


def _get_task(mteb, name: str):
    try:
        return mteb.get_task(name)
    except (KeyError, ValueError) as exc:
        names = [t.metadata.name for t in mteb.get_tasks(task_types=["Retrieval"])]
        raise GoldsetError(f"'mteb:{name}' is not an MTEB task.{did_you_mean(name, names)}") from exc


def load_mteb_goldset(name: str) -> Goldset:
    """Load an MTEB retrieval task's eval splits as a :class:`Goldset` (needs the hub or a warm ``datasets`` cache)."""
    mteb = require("mteb", extra="mteb")
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    task = _get_task(mteb, name)
    if not isinstance(task, AbsTaskRetrieval):
        raise GoldsetError(f"'mteb:{name}' is a {task.metadata.type} task, not a retrieval task; pick a Retrieval task")
    repo = task.metadata.dataset["path"]
    try:
        with _offline_unless_reachable(repo):
            task.load_data()
    except (OSError, ConnectionError) as exc:
        raise HubUnreachable(
            f"'mteb:{name}' needs its data from the Hugging Face hub ({repo}), which could not be "
            f"reached and is not cached ({type(exc).__name__}); run once with network access, or give a BEIR folder instead"
        ) from exc
    subsets = list(task.dataset)
    subset = pick_subset(subsets)
    if len(subsets) > 1:
        log.warning("mteb:%s has subsets %s; using '%s'", name, ", ".join(subsets), subset)
    return _to_goldset(name, task, task.dataset[subset])


@contextmanager
def _offline_unless_reachable(repo: str):
    """Read only the local cache while the hub cannot be reached: otherwise ``datasets`` retries each
    request five times with back-off (32 s measured per task, offline) before it falls back to the cache
    or fails. The offline switches are module constants read at call time (the environment variable
    ``HF_HUB_OFFLINE`` is read once, at import), so they are set for this load and put back after."""
    from datasets import config
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _hub_answers(repo):
        yield
        return
    saved = constants.HF_HUB_OFFLINE, config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, config.HF_HUB_OFFLINE = saved


def _hub_answers(repo: str) -> bool:
    """Whether the hub answers about the dataset ``repo`` (any answer, a 404 included), asked once, without retries."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().dataset_info(repo, timeout=HUB_TIMEOUT_S)
    except HfHubHTTPError:
        return True
    except Exception:  # noqa: BLE001 - DNS, refused, timeouts: the transport's error classes change between huggingface_hub versions
        return False
    return True


def _to_goldset(name: str, task, splits: dict) -> Goldset:
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split, data in splits.items():
        for row in data["corpus"]:
            corpus.setdefault(str(row["id"]), Document(row.get("title") or "", row.get("text") or ""))
        for row in data["queries"]:
            queries.setdefault(str(row["id"]), row["text"])
        qrels[split] = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in data["relevant_docs"].items()}
    manifest = Manifest(
        name=name,
        description=task.metadata.description,
        domain=", ".join(task.metadata.domains or []),
        eval_splits=list(task.metadata.eval_splits),
    )
    return Goldset(name=name, source=f"mteb:{name}", manifest=manifest, corpus=corpus, queries=queries, qrels=qrels)
