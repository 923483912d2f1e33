"""The ladder file: goldsets, metrics and rungs, cheapest first, as one TOML file a team keeps in its repo.

::

    name = "my-search"
    goldsets = ["goldsets/support"]        # folders (relative to this file), bundled names, mteb:<Task>
    primary_metric = "ndcg@10"

    [[rungs]]
    name = "baseline"
    kind = "dense"
    encoder = { model = "sentence-transformers/all-MiniLM-L6-v2" }

    [[rungs]]
    name = "bm25"
    kind = "bm25"

    [[rungs]]
    name = "hybrid"
    kind = "hybrid"
    inputs = ["bm25", "baseline"]

:func:`load_ladder` parses and checks it (unknown keys, rung references, metric names, backend names
and options) without loading a model or a goldset; ``bench validate`` is that check.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from harness.cache import BLOCK
from harness.choices import PairedTest, QuerySubset, Runtime, values
from harness.config import read_toml, validate
from harness.environment import shipped
from harness.errors import ConfigError, did_you_mean
from harness.ladder.rungs import (
    COMPRESSIBLE,
    AdapterRung,
    AnyRung,
    ChunkedRung,
    CompressRung,
    DenseRung,
    FinetuneRung,
    MergeRung,
    MetricName,
    RerankRung,
    Rung,
    depends_on,
)
from harness.metrics import DEFAULT_METRICS
from harness.prices import DEFAULT_PRICES, Price
from harness.protocols import EncodeEngine

DEFAULT_LADDER = shipped("ladder.toml")
BUNDLED_LADDERS = shipped("ladders")
LADDER_FILE = "ladder.toml"
LOCAL = "local"  # the [execution] engine that is this process


class Decision(BaseModel):
    """The ``[decision]`` table: the thresholds ``bench report`` decides GO / NO-GO / NOT YET with.

    Defaults are conventions, not laws: the 80% recall bar and a one-point margin are the usual
    "good enough" and "worth a training pipeline" lines; alpha 0.05 is the usual test level.
    """

    model_config = ConfigDict(extra="forbid")

    recall_metric: MetricName = Field("recall@10", description="the metric the quality bar applies to")
    recall_bar: float = Field(0.80, ge=0, le=1, description="a rung at or above this on recall_metric meets the bar")
    finetune_margin: float = Field(0.01, ge=0, description="fine-tuning must beat the best cheaper rung by this much of the primary metric")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level, after Holm's correction over the rungs compared")
    test: PairedTest = Field("fisher", description="paired test: Fisher's randomisation test or the paired t-test")
    ood_tolerance: float = Field(0.01, ge=0, description="largest out-of-domain drop of the primary metric fine-tuning may cause")
    min_queries: int = Field(50, ge=1, description="fewer evaluation queries than this is reported as a pitfall")


class GateRule(BaseModel):
    """One ``[[gate.rules]]`` threshold: a drop of ``metric`` larger than ``max_drop`` fails ``bench gate``
    (with ``significant``, only when the paired test also finds the drop at the gate's ``alpha``)."""

    model_config = ConfigDict(extra="forbid")

    metric: MetricName
    max_drop: float = Field(0.01, ge=0, description="largest absolute drop allowed (0.01: one point of nDCG@10)")
    significant: bool = Field(False, description="fail only when the drop is also statistically significant")
    split: str | None = Field(None, description="only this split (default: every split compared)")
    goldset: str | None = Field(None, description="only this goldset, e.g. an out-of-domain companion (default: every one)")
    subset: QuerySubset | None = Field(
        None, description="only the candidate's queries about documents it trained on ('seen') or never trained on ('unseen'; CI can hold generalisation to new documents)"
    )


class Gate(BaseModel):
    """The ``[gate]`` table: what ``bench gate`` fails a candidate on. Without rules, the primary metric
    may drop by at most 0.01 on every goldset and split."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the paired test")
    test: PairedTest = Field("fisher", description="paired test: Fisher's randomisation test or the paired t-test")
    rules: list[GateRule] = Field(default_factory=list)


class Execution(BaseModel):
    """The ``[execution]`` table: where rungs encode their corpus. ``local`` (the default) encodes in this
    process; ``ray`` sends each large document encode to Ray Data (:mod:`backends.ray_engine`): ``workers``
    actors, each holding one copy of the model (on a CPU, or ``gpus_per_worker`` of a GPU), encode blocks
    of ``batch_size`` texts, each committed to the embedding cache as it returns. Queries stay local.
    Where documents are encoded changes neither the vectors nor the records' keys: only their details
    say where (``encoded_on``). ``bench run --engine`` overrides ``engine``.
    """

    model_config = ConfigDict(extra="forbid")

    engine: str = Field(LOCAL, description="local, or a registered engine backend (ray)")
    address: str | None = Field(None, description="none: start Ray on this machine; 'auto', 'host:6379' or 'ray://host:10001': a cluster")
    workers: int = Field(2, ge=1, description="actors encoding at once, each loading the model once")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs (or a share of one) per actor; 0: CPU")
    batch_size: int = Field(BLOCK, ge=1, description="texts per block: one worker call, one cache commit")
    runtime: Runtime = Field(
        "torch", description="what serves local sentence-transformers models on the CPU: torch, or their fp32 export to ONNX Runtime or OpenVINO, "
        "checked against torch (the same vectors: the fingerprint, cache and records stay the model's; the records name the runtime)")

    @field_validator("engine")
    @classmethod
    def _registered(cls, name: str) -> str:
        from harness import registry

        if name != LOCAL and name not in (choices := registry.available("engine")):
            names = [LOCAL, *sorted(choices)]
            raise ValueError(f"unknown engine '{name}' (choices: {', '.join(names)}).{did_you_mean(name, names)}")
        return name

    @field_validator("runtime", mode="before")
    @classmethod
    def _known_runtime(cls, name: object) -> object:
        if isinstance(name, str) and name not in (choices := values(Runtime)):
            raise ValueError(f"unknown runtime '{name}' (choices: {', '.join(choices)}).{did_you_mean(name, choices)}")
        return name

    def build(self) -> EncodeEngine | None:
        """The engine (None: local), built before any work, so a missing package is a one-line error up front."""
        from harness import registry

        if self.engine == LOCAL:
            return None
        return registry.load("engine", self.engine)(**self.model_dump(exclude={"engine", "runtime"}))


class Ladder(BaseModel):
    """A parsed ladder file. ``source`` is the file it came from (goldset paths are relative to it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "ladder"
    description: str = ""
    goldsets: list[str] = Field(default_factory=lambda: ["demo"])
    splits: list[str] = Field(default_factory=list, description="default: each goldset's eval_splits")
    ood: bool = True
    metrics: list[MetricName] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    primary_metric: MetricName = "ndcg@10"
    latency_queries: int = Field(50, ge=0, description="queries timed one at a time on the query path (0: none)")
    prices: dict[str, Price] = Field(default_factory=dict)
    rungs: list[Rung] = Field(min_length=1)
    decision: Decision = Field(default_factory=Decision)
    gate: Gate = Field(default_factory=Gate)
    execution: Execution = Field(default_factory=Execution)
    source: Path | None = Field(None, exclude=True)

    @field_validator("primary_metric", "decision", "gate")
    @classmethod
    def _in_metrics(cls, value, info: ValidationInfo):
        """Each metric a decision or gate rule reads must be computed (an error names the key)."""
        metrics = info.data.get("metrics")
        if metrics is None:  # metrics itself is invalid; that error is reported
            return value
        named = {"primary_metric": [value]} if info.field_name == "primary_metric" else {}
        named |= {"decision.recall_metric": [value.recall_metric]} if info.field_name == "decision" else {}
        named |= {"gate rule metric": [r.metric for r in value.rules]} if info.field_name == "gate" else {}
        for key, wanted in named.items():
            for metric in wanted:
                if metric not in metrics:
                    what = f"'{metric}'" if key == info.field_name else f"{key} '{metric}'"
                    raise ValueError(f"{what} is not in metrics ({', '.join(metrics)}).{did_you_mean(metric, metrics)} Pick one of those, or add it to metrics")
        return value

    @model_validator(mode="after")
    def _rounds(self) -> Ladder:
        """A finetune rung becomes one rung per round (its train table checked as a TrainConfig)."""
        from harness.config import describe
        from harness.training.schema import TrainConfig

        expanded = []
        for rung in self.rungs:
            if isinstance(rung, FinetuneRung) and rung.round is None:
                try:
                    config = TrainConfig.model_validate({"name": rung.name, **rung.train})
                except ValidationError as exc:
                    raise ValueError(f"rung '{rung.name}' train table: {describe(exc, TrainConfig)}") from None
                expanded += [rung.model_copy(update={"name": f"{rung.name}-r{i}", "round": i}) for i in range(config.mining.rounds + 1)]
            elif isinstance(rung, CompressRung) and rung.form is None:  # one rung per form, each recording only its own
                expanded += [rung.model_copy(update={"name": f"{rung.name}-{form}", "form": form, "forms": [form]}) for form in rung.forms]
            else:
                expanded.append(rung)
        last_round = {r.name.rsplit("-r", 1)[0]: r.name for r in expanded if isinstance(r, FinetuneRung)}  # rounds come in order: the last wins
        self.rungs = [r.model_copy(update={"of": last_round[r.of]}) if isinstance(r, MergeRung | CompressRung) and r.of in last_round else r for r in expanded]
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Ladder:
        seen: dict[str, None] = {}  # in ladder order, for the messages
        for rung in self.rungs:
            if rung.name in seen:
                raise ValueError(f"two rungs are named '{rung.name}'; rung names must be unique")
            for needed in depends_on(rung):
                if needed not in seen:
                    earlier = f"rungs before it: {', '.join(seen)}" if seen else "it is the first rung"
                    where = "is defined later; list it first" if any(r.name == needed for r in self.rungs) else f"does not exist ({earlier}).{did_you_mean(needed, seen)}"
                    raise ValueError(f"rung '{rung.name}' uses rung '{needed}', which {where}")
            seen[rung.name] = None
        kinds = {r.name: r.kind for r in self.rungs}
        for rung in self.rungs:
            if isinstance(rung, MergeRung) and rung.of and kinds[rung.of] != "finetune":
                raise ValueError(f"rung '{rung.name}' merges rung '{rung.of}', a {kinds[rung.of]} rung; of must name a finetune rung or one of its rounds, or give model = '<fine-tuned folder>'")
            if isinstance(rung, CompressRung) and kinds[rung.of] not in COMPRESSIBLE:
                raise ValueError(f"rung '{rung.name}' compresses rung '{rung.of}', a {kinds[rung.of]} rung; of must name a {', '.join(COMPRESSIBLE)} rung (one vector per document from one model)")
        return self

    @property
    def metric_order(self) -> tuple[str, ...]:
        """Metrics with the primary one first (records and tables put it first)."""
        return (self.primary_metric, *(m for m in self.metrics if m != self.primary_metric))

    @property
    def base(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def price_table(self) -> dict[str, Price]:
        return {**DEFAULT_PRICES, **self.prices}

    def rung(self, name: str) -> AnyRung:
        for rung in self.rungs:
            if rung.name == name:
                return rung
        names = [r.name for r in self.rungs]
        raise ConfigError(f"unknown rung '{name}' (rungs: {', '.join(names)}).{did_you_mean(name, names)}")

    def select(self, names: list[str] | tuple[str, ...]) -> list[AnyRung]:
        """The named rungs and every rung they consume, in ladder order (all rungs when ``names`` is empty)."""
        if not names:
            return list(self.rungs)
        wanted: set[str] = set()
        stack = [self.rung(n).name for n in names]
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack += depends_on(self.rung(name))
        return [r for r in self.rungs if r.name in wanted]


def load_ladder(path: Path | str) -> Ladder:
    """Parse and check a ladder file; one :class:`ConfigError` line naming the file and key on any problem."""
    path = Path(path)
    if path.is_dir():
        path = path / LADDER_FILE
    ladder = validate(Ladder, read_toml(path), str(path))
    ladder.source = path.resolve()
    check_backends(ladder, str(path))
    return ladder


def with_engine(ladder: Ladder, engine: str) -> Ladder:
    """``ladder`` with ``bench run --engine`` in place of its ``[execution]`` engine (its other options kept)."""
    execution = validate(Execution, {**ladder.execution.model_dump(), "engine": engine}, "--engine")
    return ladder.model_copy(update={"execution": execution})


def with_runtime(ladder: Ladder, runtime: str) -> Ladder:
    """``ladder`` with ``bench run --runtime`` in place of its ``[execution]`` runtime."""
    execution = validate(Execution, {**ladder.execution.model_dump(), "runtime": runtime}, "--runtime")
    return ladder.model_copy(update={"execution": execution})


def resolve_ladder(path: str | None) -> Ladder:
    """``path`` (a file, a folder with a ladder.toml, or a bundled ladder's name: ``demo`` is the
    shipped ``ladders/demo.toml``), else ``./ladder.toml``, else the default ladder shipped with tunebench."""
    if path:
        return load_ladder(find_ladder(path))
    local = Path.cwd() / LADDER_FILE
    return load_ladder(local if local.is_file() else DEFAULT_LADDER)


def bundled_ladders() -> dict[str, Path]:
    """The ladders shipped with tunebench, by name (``ladders/<name>.toml``)."""
    return {p.stem: p for p in sorted(BUNDLED_LADDERS.glob("*.toml"))}


def find_ladder(path: str) -> Path:
    """The ladder file ``path`` names: a file or folder here, else a bundled ladder's name; a
    :class:`ConfigError` listing the bundled ladders otherwise."""
    here = Path(path).expanduser()
    if here.is_file() or (here / LADDER_FILE).is_file():
        return here
    bundled = bundled_ladders()
    name = here.stem if here.suffix == ".toml" and here.parent == Path(".") else path
    if name in bundled:
        return bundled[name]
    names = list(bundled)
    hint = f" tunebench's own {here.as_posix()} is the bundled ladder '{here.stem}': pass -l {here.stem}" if here.stem in bundled else did_you_mean(here.stem, names)
    raise ConfigError(f"ladder file '{path}' not found (from {Path.cwd()}) and not a bundled ladder's name (bundled: {', '.join(names) or 'none'}).{hint}")


def check_backends(ladder: Ladder, where: str) -> None:
    """Every backend named exists, every extra option is a keyword its constructor takes, and what the
    backend can check without a model or a client (a model id, option ranges) holds; an adapter rung's
    options are valid.

    Imports the backend module (cheap: SDKs and models load lazily), never a model or an API client.
    """
    from harness import registry

    for i, rung in enumerate(ladder.rungs):
        if isinstance(rung, AdapterRung):
            from harness.training.adapter import AdapterOptions

            validate(AdapterOptions, rung.adapter, f"{where}: rung '{rung.name}' adapter")
        for key, kind, config in _backend_tables(rung):
            try:
                cls = registry.load(kind, config.backend)
            except ConfigError as exc:
                raise ConfigError(f"{where}: rungs[{i}] ('{rung.name}').{key}.backend: {exc}") from exc
            _check_options(cls, config, f"{where}: rungs[{i}] ('{rung.name}').{key}")
            if problems := registry.config_problems(kind, config):
                option, problem = next(iter(problems.items()))
                raise ConfigError(f"{where}: rungs[{i}] ('{rung.name}').{key}.{option}: {problem}")


def _backend_tables(rung: AnyRung) -> list[tuple[str, str, object]]:
    """(key, backend kind, config) of each backend a rung names: its encoder or its reranker."""
    if isinstance(rung, (DenseRung, ChunkedRung, AdapterRung)):
        return [("encoder", "encoder", rung.encoder)]
    if isinstance(rung, RerankRung):
        return [("reranker", "reranker", rung.reranker)]
    return []


def check_online(ladder: Ladder) -> list[str]:
    """Ask each backend's service whether the models the ladder names exist (``bench validate``): a
    :class:`ConfigError` for the first it says does not, and the models it could not ask about (offline)."""
    from harness import registry

    unasked: dict[str, None] = {}
    answers: dict[tuple[str, str, str], dict[str, str] | None] = {}  # one question per model, however many rungs name it
    for i, rung in enumerate(ladder.rungs):
        for key, kind, config in _backend_tables(rung):
            asked = (kind, config.backend, config.model)
            if asked not in answers:
                answers[asked] = registry.online_problems(kind, config)
            problems = answers[asked]
            if problems is None:
                unasked[config.model] = None
            elif problems:
                option, problem = next(iter(problems.items()))
                raise ConfigError(f"{ladder.source}: rungs[{i}] ('{rung.name}').{key}.{option}: {problem}")
    return list(unasked)


def _check_options(cls: type, config, where: str) -> None:
    params = inspect.signature(cls).parameters
    if "cache" in (config.model_extra or {}):
        raise ConfigError(f"{where}: 'cache' is set by tunebench (the run's cache), not in a ladder; remove it")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [k for k in dict.fromkeys([*type(config).model_fields, *params]) if k != "cache"]
    for key in config.model_extra or {}:
        if key not in accepted:
            raise ConfigError(f"{where}: unknown key '{key}' for backend '{config.backend}'.{did_you_mean(key, accepted)} (valid keys here: {', '.join(accepted)})")
