"""Corpus encoding on Ray Data (engine backend ``ray``): Ray's engine for batch inference at scale, so
tunebench schedules nothing of its own.

The texts become a dataset of ``(position, text)`` rows cut into blocks of ``batch_size``;
``map_batches`` hands each block to one of ``workers`` actors (:class:`EncodeWorker`), each of which
rebuilds the encoder from its configuration once (one model load per actor, on a CPU or
``gpus_per_worker`` of a GPU) and encodes whole blocks; the driver streams the finished blocks back as
they complete, and :class:`harness.cache.CachedEncoder` commits each to the embedding cache at once.
That commit is the resume: a killed run keeps every block it received, and a re-run finds them cached
and sends only the rest. A worker builds the same encoder as this process or fails: it must find the
fingerprint the driver computed (the same weights and settings), so a node with another model version
can never put its vectors under this one's name.

``address`` None starts Ray on this machine (``ray.init()``; tests and demos); ``"auto"`` joins a
cluster started here with ``ray start``, ``"host:6379"`` a cluster's head, ``"ray://host:10001"``
one through Ray Client: the address is a user's only change. A Ray session already started in this
process (a notebook, a test) is used as it is. Ray starts on the first encode that needs it, not
when the ladder loads: a run that finds every vector cached never starts it.

Ray is chatty: its logs go to its session folder, not this terminal (``log_to_driver`` off: a
worker's error still comes back, as the exception), and its progress bars show only on a terminal
where tunebench's own progress (one update per committed block) is off.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from harness import progress
from harness.cache import BLOCK
from harness.errors import ConfigError, RunFailure, require
from harness.protocols import InputType
from harness.registry import EncoderConfig, build_encoder

PROBE_S = 5.0
"""Seconds to wait for a TCP connection to a cluster address before ``ray.init``: Ray itself retries an
address where nothing listens for minutes (14 here, with Ray 2.60) before it gives up."""


class RayEngine:
    """An :class:`~harness.protocols.EncodeEngine` on Ray Data, with the ``[execution]`` table's options.

    Constructed before any work, so a missing ``ray`` package is a one-line error with its pip line
    before a single rung runs.
    """

    def __init__(self, *, address: str | None = None, workers: int = 2, gpus_per_worker: float = 0.0, batch_size: int = BLOCK):
        require("ray.data", extra="ray")
        self.address, self.workers, self.gpus_per_worker, self.batch_size = address, workers, gpus_per_worker, batch_size

    @property
    def label(self) -> str:
        """``ray (2 workers)``, with each worker's GPU share and the cluster when there is one."""
        gpus = f", {self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else ""
        where = f", at {self.address}" if self.address else ""
        return f"ray ({self.workers} worker{'s' if self.workers > 1 else ''}{gpus}{where})"

    def encode_blocks(self, encoder: Mapping[str, Any], fingerprint: str, texts: Sequence[str], *, input_type: InputType) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, vectors)`` per block as the workers finish it (Ray Data's streaming
        execution, order not kept); a worker's failure becomes one line (:func:`_worker_error`)."""
        if not texts:
            return
        ray = self._connect()
        rows = ray.data.from_items([{"position": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=-(-len(texts) // self.batch_size))
        blocks = rows.map_batches(
            EncodeWorker,
            fn_constructor_kwargs={"encoder": dict(encoder), "fingerprint": fingerprint, "input_type": input_type},
            batch_size=None,  # a whole block per call: one input block is one output block is one cache commit
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            **({"num_gpus": self.gpus_per_worker} if self.gpus_per_worker else {}),
        )
        try:
            for block in blocks.iter_batches(batch_size=None, batch_format="numpy"):
                yield block["position"], block["vector"]
        except (ray.exceptions.RayError, ray.data.exceptions.UserCodeException) as exc:
            raise _worker_error(exc, self.label) from exc

    def _connect(self):
        """Ray, started here or joined at ``address`` on first use, with its output kept off this terminal."""
        import ray

        if not ray.is_initialized():
            if self.address not in (None, "auto"):
                self._probe()
            local = {} if self.address else {"include_dashboard": False}
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False, **local)
            except (ConnectionError, ValueError) as exc:  # ValueError: Ray Client without its package, a malformed address
                raise self._unreachable(str(exc).splitlines()[0]) from exc
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = sys.stderr.isatty() and progress.mode == "off"  # one progress display at a time
        context.print_on_execution_start = False
        for handler in logging.getLogger("ray.data").handlers:  # Ray Data's console lines; its log file keeps them all
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL)
        return ray

    def _probe(self) -> None:
        """Fail in seconds, not minutes, where nothing listens at ``host:port``."""
        parts = urlsplit(self.address if "://" in self.address else f"//{self.address}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise self._unreachable("it is not host:port, ray://host:port or auto")
        try:
            socket.create_connection((parts.hostname, port), timeout=PROBE_S).close()
        except OSError as exc:
            raise self._unreachable(f"no answer at {parts.hostname}:{port} within {PROBE_S:g} s: {exc}") from exc

    def _unreachable(self, why: str) -> ConfigError:
        return ConfigError(
            f"[execution] address '{self.address}': cannot reach a Ray cluster ({why}); start one (ray start --head), "
            "fix the address, or leave address out to start Ray on this machine"
        )


class EncodeWorker:
    """One Ray actor: the encoder built once from its configuration, then whole blocks encoded."""

    def __init__(self, encoder: dict, fingerprint: str, input_type: InputType):
        self.encoder = build_encoder(EncoderConfig.model_validate(encoder))
        if self.encoder.fingerprint != fingerprint:
            raise RunFailure(
                f"the encoder rebuilt on a Ray worker fingerprints as {self.encoder.fingerprint}, not {fingerprint} as on this machine: "
                "its model files or packages differ there; install the same on every node"
            )
        self.input_type = input_type

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode(block["text"].tolist(), input_type=self.input_type)
        return {"position": block["position"], "vector": np.asarray(vectors, dtype=np.float32)}


def _worker_error(exc: BaseException, label: str) -> RunFailure:
    """A worker's failure as one line. Ray reports it as text (the worker's traceback inside its own
    exception, without the original object for a failed actor start), so the line is the traceback's
    last ``Class: message`` that is not Ray's own; tunebench's own errors keep only their message."""
    raised = [m for m in _RAISED.finditer(str(exc)) if not m["name"].startswith("ray.")]
    if not raised:
        problem = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    else:
        name, message = raised[-1]["name"], raised[-1]["message"]
        problem = message if name.startswith(("harness.", "backends.")) else f"{name.rsplit('.', 1)[-1]}: {message}"
    return RunFailure(f"{label} failed: {problem} (Ray's logs: /tmp/ray/session_latest/logs)")


_RAISED = re.compile(r"^(?P<name>[A-Za-z_][\w.]*): (?P<message>.+)$", re.MULTILINE)
"""A traceback's closing line, ``module.Class: message``."""
