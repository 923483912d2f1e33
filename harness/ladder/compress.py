"""The compress rung's stage: an earlier rung's model served in a cheaper form (:mod:`harness.retrieval.compression`).

The model comes from the ``of`` rung's record: a dense rung's encoder table, or the folder a finetune round
or merge rung records (``details["model"]``) with the prompts its card keeps. Rebuilt, it must have the
fingerprint the record names, so a vector form searches exactly the vectors the ``of`` rung cached: nothing
is encoded again (a cache emptied since is the exception, and the record's counts say so). A model form
(``onnx-int8``, ``openvino-int8``) serves that model quantized, a model of its own, so it encodes the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from harness.cache import Cache
from harness.errors import ConfigError, RungUnavailable
from harness.ladder.rungs import CompressRung, DenseRung
from harness.ladder.stages import Context, RetrieverStage, SkipSplit, SplitResult
from harness.records import RunRecord
from harness.registry import EncoderConfig, build_encoder
from harness.retrieval.compression import MODEL_FORMS, Form


def of_encoder(record: RunRecord) -> EncoderConfig:
    """The encoder that made ``record``'s vectors: a dense rung's table, or the model folder a fine-tuned
    or merged rung records, encoding as its card says (prompts, length)."""
    if record.rung.kind == "dense":
        return EncoderConfig.model_validate(record.rung.config["encoder"])
    from harness.training.merge import read_source

    folder = record.details.get("model")
    if not folder:
        raise ConfigError(f"rung '{record.rung.name}' records no model folder to compress; run it again")
    return read_source(Path(folder)).encoder_config(folder)


class CompressStage:
    """One form of the ``of`` rung's model: its cached float vectors compressed once per goldset, searched
    per split like a dense rung (query encoded in full, then compressed on the query path)."""

    def __init__(self, rung: CompressRung, cache: Cache):
        self.rung, self.cache = rung, cache
        self.fingerprint: str | None = None
        self._stages: dict[str, RetrieverStage] = {}  # one model load per encoder, whatever the goldset

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        """The ``of`` rung's record; for a model form also the quantized model's own fingerprint, which
        changes with what an export holds (a new export version is a new model, so new records)."""
        record = ctx.input_record(target, split, self.rung.of)
        key = f"compress-{record.key}"
        return f"{key}-{self._stage(record).fingerprint}" if self.rung.form in MODEL_FORMS else key

    def _stage(self, record: RunRecord) -> RetrieverStage:
        try:
            config = of_encoder(record)
        except ConfigError as exc:
            raise SkipSplit(str(exc)) from exc
        key = config.model_dump_json()
        if key not in self._stages:
            self._stages[key] = self._form_stage(config)
        stage = self._stages[key]
        model = stage.fingerprint if self.rung.form not in MODEL_FORMS else build_encoder(config, self.cache).fingerprint
        if model != record.rung.encoder_fingerprint:
            raise SkipSplit(f"rung '{record.rung.name}' was encoded by {record.rung.encoder_fingerprint}, but its model now fingerprints as {model} "
                            f"(its folder changed since); run rung '{record.rung.name}' again")
        return stage

    def _form_stage(self, config: EncoderConfig) -> RetrieverStage:
        """A vector form searches the ``of`` encoder's vectors; a model form is that model quantized and
        served on a runtime, a dense rung of its own."""
        if self.rung.form in MODEL_FORMS:
            if config.backend != "sentence-transformers":
                raise SkipSplit(f"form '{self.rung.form}' serves a local sentence-transformers model; rung '{self.rung.of}' encodes with the {config.backend} backend")
            runtime, quantize = MODEL_FORMS[self.rung.form]
            config = EncoderConfig.model_validate({**config.model_dump(), "runtime": runtime, "quantize": quantize})
            return RetrieverStage(DenseRung(name=self.rung.name, encoder=config, top_k=self.rung.top_k), self.cache)
        form = Form(self.rung.form or "", self.rung.rescore_multiplier, self.rung.rescore_with)
        return RetrieverStage(DenseRung(name=self.rung.name, encoder=config, top_k=self.rung.top_k), self.cache, form)

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        record = ctx.input_record(target, splits[0], self.rung.of)  # one model for every split of a goldset
        stage = self._stage(record)
        self.fingerprint = stage.fingerprint
        origin = {"of": self.rung.of, "model": str(stage.rung.encoder.model), "engine": stage.rung.encoder.backend}
        if self.rung.form in MODEL_FORMS:
            origin["form"] = self.rung.form
        try:
            for split, result in stage.run(ctx, target, splits):
                if isinstance(result, SplitResult):
                    result.details = {**result.details, **origin}
                    if self.rung.form not in MODEL_FORMS and result.details.get("encode_measured") not in (None, "this run"):  # the same encoder's rate: the of rung's
                        result.details["encode_measured"] = f"rung '{self.rung.of}' (this form reuses its vectors)"
                yield split, result
        except ConfigError as exc:  # a form that does not fit this model (mrl-512 of 384 dimensions)
            if isinstance(exc, RungUnavailable):
                raise
            raise SkipSplit(str(exc)) from exc
