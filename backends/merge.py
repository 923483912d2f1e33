"""Merging sentence-transformers models in weight space: a :class:`harness.protocols.Merger`.

``theta = sum_i w_i * theta_i`` over every floating-point tensor of models that share one architecture,
as WiSE-FT interpolates a fine-tuned model with its base (Wortsman et al. 2022, "Robust fine-tuning of
zero-shot models": ``(1 - alpha) * theta_base + alpha * theta_finetuned``) and LM-Cocktail mixes several
fine-tuned models (Xiao et al. 2023, "LM-Cocktail: Resilient Tuning of Language Models via Model
Merging"). A LoRA round is saved merged (``theta_base + B A * scale``), so interpolating it with its
base is exactly the adapter scaled by alpha. Non-float tensors (position ids, token type ids) are taken
from the template, the first model, whose modules, tokenizer and configuration the merged folder keeps.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.training.schema import MODEL_CARD

log = logging.getLogger(__name__)

# Files that shape what a folder's model computes besides its weights (a module's own config.json
# is in its subfolder; the transformer's config.json may differ in bookkeeping such as dtype or version).
_MODULE_FILES = ("modules.json", "sentence_bert_config.json")


class WeightMerger:
    """Weighted averages of ``models`` (folders or hub ids; the first is the template). Each model is
    loaded once, on the first :meth:`write`, so one merger writes a whole grid of weights."""

    def __init__(self, models: Sequence[str | Path]):
        from backends.sentence_transformers import resolve_model

        if len(models) < 2:
            raise ConfigError(f"merging needs at least two models, got {len(models)}")
        self.names = [str(m) for m in models]
        self.paths = [resolve_model(str(m)) for m in models]

    @cached_property
    def _loaded(self) -> tuple[Any, list[dict]]:
        """The template model and every model's state dict, checked to share names and shapes."""
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        models = [SentenceTransformer(str(p), device="cpu") for p in self.paths]
        states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]  # copies: each write loads into the template
        for name, state in zip(self.names[1:], states[1:]):
            if problem := _difference(states[0], state):
                raise ConfigError(
                    f"cannot merge '{name}' with '{self.names[0]}': {problem}; merging needs one architecture, "
                    "such as a fine-tuned round and the base model it was trained from"
                )
        return models[0], states

    def modules_match(self) -> bool:
        return all(_module_files(p) == _module_files(self.paths[0]) for p in self.paths[1:])

    def merged_state(self, weights: Sequence[float]) -> dict:
        """``sum_i weights[i] * state_i`` for floating-point tensors (computed in float32 or wider, then
        cast back), the template's tensor for the others."""
        import torch

        if len(weights) != len(self.paths):
            raise ConfigError(f"{len(weights)} merge weights for {len(self.paths)} models")
        if not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise ConfigError(f"merge weights must sum to 1 (a weighted average), got {sum(weights):g} from {list(weights)}")
        _, states = self._loaded
        merged = {}
        for key, tensor in states[0].items():
            if not torch.is_floating_point(tensor):
                merged[key] = tensor.clone()
                continue
            wide = torch.promote_types(tensor.dtype, torch.float32)
            total = weights[0] * tensor.to(wide)
            for w, state in zip(weights[1:], states[1:]):
                total = total + w * state[key].to(wide)
            merged[key] = total.to(tensor.dtype)
        return merged

    def write(self, weights: Sequence[float], out_dir: Path, card: Mapping[str, Any], files: Mapping[str, str] | None = None) -> Path:
        out_dir = Path(out_dir)
        template, _ = self._loaded
        template.load_state_dict(self.merged_state(weights))
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):  # left by a killed write (not one in progress)
            if not _alive(stale.name.rsplit("-", 1)[1]):
                shutil.rmtree(stale, ignore_errors=True)
        partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
        template.save(str(partial), create_model_card=False)
        for name, text in (files or {}).items():
            (partial / name).write_text(text, encoding="utf-8")
        write_card(partial, card)
        if out_dir.is_dir() and not (out_dir / MODEL_CARD).is_file():  # not ours to trust: no card, so never complete
            shutil.rmtree(out_dir)
        try:
            os.rename(partial, out_dir)
        except OSError:
            if not (out_dir / MODEL_CARD).is_file():
                raise
            shutil.rmtree(partial, ignore_errors=True)  # another process finished the same folder first
        return out_dir


def _alive(pid: str) -> bool:
    """Whether the process that named a partial folder still runs (then its write is in progress)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """What keeps two state dicts from being averaged (None when nothing does)."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        first = f"'{only_a[0]}' only in the first" if only_a else f"'{only_b[0]}' only in the second"
        return f"their weights differ in names ({len(only_a) + len(only_b)} unmatched, {first})"
    for key in a:
        if tuple(a[key].shape) != tuple(b[key].shape):
            return f"weight '{key}' has shape {tuple(a[key].shape)} in one and {tuple(b[key].shape)} in the other"
    return None


def _module_files(folder: Path) -> dict[str, str]:
    """The texts of the files that configure a folder's modules (modules.json, the settings file and
    each module's config), by name; empty for a plain transformers folder."""
    found = {name: (folder / name).read_text(encoding="utf-8") for name in _MODULE_FILES if (folder / name).is_file()}
    modules = folder / "modules.json"
    for module in json.loads(modules.read_text(encoding="utf-8")) if modules.is_file() else []:
        path = module.get("path") or ""
        if path and (folder / path / "config.json").is_file():
            found[f"{path}/config.json"] = (folder / path / "config.json").read_text(encoding="utf-8")
    return found


def write_card(folder: Path, card: Mapping[str, Any]) -> None:
    """``tunebench.json`` and a README.md saying what was merged, with which weights."""
    (folder / MODEL_CARD).write_text(json.dumps(card, indent=1, sort_keys=True), encoding="utf-8")
    lines = [f"# {card.get('name', folder.name)}", "", "Merged by tunebench in weight space: theta = sum of w_i * theta_i.", ""]
    lines += [f"- `{model}`: {w:g}" for model, w in zip(card.get("models", []), card.get("weights", []))]
    if "alpha" in card:
        lines += ["", f"alpha = {card['alpha']:g} (0: the base model, 1: the fine-tuned model)"]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
