"""How far to fine-tune, after the fact: a fine-tuned model interpolated with its base in weight space.

``theta(alpha) = (1 - alpha) * theta_base + alpha * theta_finetuned`` over a grid of alpha (WiSE-FT,
Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"; LM-Cocktail, Xiao et al. 2023, mixes
several fine-tuned models the same way to keep a general model's strength out of domain). Each alpha's
model is scored on the in-domain selection split and on the out-of-domain companions; the alpha kept
(:func:`choose_alpha`) is the best in domain among those whose out-of-domain drop against the base
stays within the tolerance. Models are written through the registry's ``merger`` backend, one folder
per alpha under the rung's folder, found again on a re-run (a folder counts once it has its card).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import progress, registry
from harness.cache import Cache, CachedEncoder, text_hash
from harness.data.goldset import Goldset
from harness.errors import ConfigError
from harness.protocols import Merger
from harness.registry import EncoderConfig, build_encoder
from harness.training.dev_eval import SplitScorer
from harness.training.schema import MODEL_CARD
from harness.training.seen import TRAINED_FILE

ENCODER_KEYS = ("query_prompt", "document_prompt", "max_length")
CARRIED = ("config", "leakage", "round", "pairs", "data_fingerprint", "fingerprint")
"""Card fields a merged model keeps from its fine-tuned round: how that round was trained (the report's
leakage and round checks read them)."""
TIE = 1e-12  # scores equal up to float noise count as equal


@dataclass(frozen=True)
class Source:
    """A fine-tuned folder, the base it was trained from, and how the round encodes (prompts, length)."""

    finetuned: Path
    base: str
    card: dict
    encoder: dict

    def encoder_config(self, model: Path | str) -> EncoderConfig:
        return EncoderConfig(model=str(model), **self.encoder)


def read_source(folder: Path | str, base: str | None = None, files_base: Path | None = None) -> Source:
    """The fine-tuned model in ``folder`` (a round with its ``tunebench.json`` card) and its base:
    ``base`` when given, else the card's ``base_model``; a relative base folder is looked up under
    ``files_base`` (the ladder file's folder) first."""
    folder = Path(folder)
    card_path = folder / MODEL_CARD
    if not card_path.is_file():
        raise ConfigError(f"model folder '{folder}' has no {MODEL_CARD}: give a fine-tuned round's folder (models/<job>-<fingerprint>/r<i>/model)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{card_path}: not readable JSON ({exc}); train the round again") from exc
    base = base or card.get("base_model")
    if not base:
        raise ConfigError(f"{card_path} names no base_model; give base = '...' in the merge rung")
    if files_base and not Path(base).expanduser().is_absolute() and (files_base / base).is_dir():
        base = str((files_base / base).resolve())
    encoder = card.get("encoder") or {k: (card.get("config") or {}).get(k) for k in ENCODER_KEYS}
    encoder = {k: v for k, v in encoder.items() if k in ENCODER_KEYS and v not in (None, "")}
    return Source(folder.resolve(), base, card, encoder)


def alpha_folder(root: Path, alpha: float) -> Path:
    return root / f"alpha-{alpha:.4f}"


class Interpolation:
    """The models of a grid of alpha between ``source``'s base and fine-tuned model, under ``root``.

    alpha = 1 is the fine-tuned folder itself, and alpha = 0 the base folder when the round was trained
    from it or their module files match (the vectors the base and fine-tuned rungs cached are reused);
    every other alpha is merged once and found again by its folder's card."""

    def __init__(self, source: Source, root: Path, name: str):
        self.source, self.root, self.name = source, root, name
        self._merger: Merger | None = None

    @property
    def merger(self) -> Merger:
        if self._merger is None:  # the fine-tuned model first: its modules and non-float buffers are kept
            self._merger = registry.load("merger", "sentence-transformers")([self.source.finetuned, self.source.base])
        return self._merger

    def model(self, alpha: float) -> Path | str:
        """The folder (or the base's hub id) of ``alpha``'s model, merged now when it is not on disk."""
        if alpha == 1:
            return self.source.finetuned
        if alpha == 0 and (self.source.base == self.source.card.get("base_model") or self.merger.modules_match()):
            return self.source.base  # the round was trained from this base, so only the weights differ (module files differ in form between sentence-transformers versions)
        folder = alpha_folder(self.root, alpha)
        if not (folder / MODEL_CARD).is_file():
            self.write(alpha, folder, {})
        return folder

    def write(self, alpha: float, folder: Path, extra: dict) -> Path:
        """Merge ``alpha``'s model into ``folder`` with its card (``extra`` added to it)."""
        return self.merger.write([alpha, 1 - alpha], folder, self.card(alpha) | extra, files=self._trained_file())

    def card(self, alpha: float) -> dict:
        source = self.source
        carried = {k: source.card[k] for k in CARRIED if k in source.card}
        return carried | {
            "name": f"{self.name}-alpha-{alpha:g}", "kind": "merge", "alpha": alpha, "base_model": source.base,
            "finetuned": str(source.finetuned), "finetuned_name": source.card.get("name"),
            "models": [str(source.finetuned), source.base], "weights": [alpha, 1 - alpha],
            "formula": "(1 - alpha) * base + alpha * finetuned (WiSE-FT)", "encoder": source.encoder,
        }

    def _trained_file(self) -> dict[str, str]:
        """The fine-tuned round's list of trained documents, so the merged model's records keep their
        seen and unseen queries (it saw what the round saw, at any alpha > 0)."""
        path = self.source.finetuned / TRAINED_FILE
        return {TRAINED_FILE: path.read_text(encoding="utf-8")} if path.is_file() else {}


@dataclass(frozen=True)
class Scored:
    """Where the curve is scored: a label (``goldset/split``), the split's scorer, the goldset."""

    label: str
    goldset: Goldset
    split: str

    def scorer(self, metric: str) -> SplitScorer:
        cut = int(metric.rsplit("@", 1)[1]) if "@" in metric else 100
        return SplitScorer(self.goldset, self.split, metrics=(metric,), depth=max(100, cut))


def score(config: EncoderConfig, cache: Cache, places: Sequence[Scored], metric: str) -> dict[str, float]:
    """``metric`` of the model of ``config`` on each place, its vectors through the embedding cache."""
    encoder = CachedEncoder(build_encoder(config, cache), cache)
    out = {}
    for place in places:
        scorer = place.scorer(metric)
        with progress.bar(f"encoding {place.label}'s documents") as update:  # minutes on a large corpus: a log shows them
            encoder.on_progress = update
            documents = encoder.encode(scorer.documents, input_type="document")
        encoder.on_progress = None
        queries = encoder.encode(list(scorer.queries.values()), input_type="query")
        out[place.label] = round(scorer.score(queries, documents)[metric], 6)
    return out


def choose_alpha(curve: list[dict], tolerance: float) -> tuple[dict, str]:
    """The point of ``curve`` to keep, and why.

    Each point has ``alpha``, ``in_domain`` (the selection split's score) and ``ood`` (label -> score);
    the alpha = 0 point is the base. A point is eligible when no out-of-domain score falls more than
    ``tolerance`` below the base's (the base always is); the eligible point with the best in-domain score
    is kept, ties going to the smaller out-of-domain drop, then to the smaller alpha (closer to the
    base, which the drop was measured against). Each point gains ``ood_drop`` and ``within_tolerance``.
    """
    base = next((p for p in curve if p["alpha"] == 0), None)
    if base is None:
        raise ConfigError("the alpha curve needs alpha = 0 (the base), which out-of-domain drops are measured against")
    for point in curve:
        point["ood_drop"] = {k: round(base["ood"][k] - v, 6) for k, v in point["ood"].items()}
        point["within_tolerance"] = all(d <= tolerance + TIE for d in point["ood_drop"].values())
    eligible = [p for p in curve if p["within_tolerance"]]
    chosen = max(eligible, key=lambda p: (round(p["in_domain"], 9), -max(p["ood_drop"].values(), default=0.0), -p["alpha"]))
    best = max(curve, key=lambda p: (round(p["in_domain"], 9), -p["alpha"]))
    why = f"alpha = {chosen['alpha']:g} scores best in domain ({chosen['in_domain']:.4f})"
    if not base["ood"]:
        why += "; no out-of-domain companion was evaluated, so the out-of-domain drop could not be checked"
    else:
        why += f" among the alphas whose out-of-domain drop against the base stays within {tolerance:g}"
        if best["in_domain"] > chosen["in_domain"] + TIE:
            place, drop = max(best["ood_drop"].items(), key=lambda kv: kv[1])
            why += f"; alpha = {best['alpha']:g} scored higher in domain ({best['in_domain']:.4f}) but dropped {drop:.4f} on {place}"
    return chosen, why


def copy_vectors(cache: Cache, source_fingerprint: str, target_fingerprint: str, texts: dict[str, list[str]]) -> None:
    """Cache the vectors ``source_fingerprint`` has for ``texts`` (input type -> texts) under
    ``target_fingerprint`` too: for a folder whose weights are byte-for-byte another's (the chosen
    alpha's model, published with its curve in the card), so its evaluation encodes nothing again."""
    for input_type, items in texts.items():
        found = cache.get(source_fingerprint, input_type, list(dict.fromkeys(text_hash(t) for t in items)))
        if found:
            cache.put(target_fingerprint, input_type, list(found), np.stack(list(found.values())))


def digest(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
