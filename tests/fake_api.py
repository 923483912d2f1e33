"""A fake Cohere (v2) and Voyage (v1) API on 127.0.0.1, for testing the API backends through the real SDKs,
and an OpenAI-compatible embeddings and ``/rerank`` server (:class:`FakeOpenAI`) for the httpx backends.

It answers ``POST /v2/embed``, ``/v2/rerank``, ``/v1/embeddings`` and ``/v1/rerank`` with bodies shaped
as the SDKs parse them (``cohere.types.EmbedByTypeResponse``, ``V2RerankResponse``; voyageai's
``EmbeddingsObject``, ``RerankingObject``, including the base64 embeddings the Voyage SDK asks for),
and errors as each service sends them (Cohere ``{"message"}``, Voyage ``{"detail"}``). It enforces
the key and the per-request limits, so a batching bug fails as it would for real.

Vectors are a hashed bag of words and scores a word overlap, so a test can check what came back.
Faults are scripted per request (:meth:`FakeApi.script`, :meth:`FakeApi.fault_at`): an error status
(with ``Retry-After``), a slow or hung answer, a body that is not JSON, or a normal answer with wrong
vectors (another width, missing rows, NaN). Every request is logged (:attr:`FakeApi.requests`) with
its texts and the status it got; :attr:`FakeApi.paid_texts` counts what a real API would have billed,
and the most requests in flight at once is kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

KEY = "test-key-SECRET123"
DIM = 32
WORD = re.compile(r"[a-z0-9]+")
COHERE_MAX_TEXTS = 96
VOYAGE_MAX_TEXTS = 1000


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def fake_vector(text: str, dim: int = DIM) -> list[float]:
    """Unit-length hashed bag of words, plus one bucket for the whole text so no text maps to zero."""
    out = np.zeros(dim, dtype=np.float32)
    for token in [*words(text), "\x00" + text]:
        out[int.from_bytes(hashlib.md5(token.encode()).digest()[:4], "little") % dim] += 1.0
    return (out / np.linalg.norm(out)).tolist()


def fake_score(query: str, document: str) -> float:
    """Share of the query's words found in the document, damped by the document's length."""
    q, d = set(words(query)), words(document)
    return round(len(q & set(d)) / (len(q) or 1) + 1.0 / (len(d) + 2), 6)


def fake_tokens(text: str) -> int:
    return len(words(text)) + 1


@dataclass
class Fault:
    """How to answer one request instead of normally. ``body`` None means the normal answer for a
    2xx status, else the service's usual error body carrying ``message``; bytes are sent verbatim."""

    status: int = 200
    body: object = None
    message: str = "fake failure"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow server, or one past the client's timeout)
    hang: bool = False  # never answer while the server runs
    # A normal embed answer, spoiled: vectors of another width, only the first ``rows`` vectors, or
    # ``poison`` (NaN, infinity) as the first number of the first vector.
    dim: int | None = None
    rows: int | None = None
    poison: float | None = None

    @classmethod
    def error(cls, status: int, message: str = "fake failure", retry_after: str | None = None) -> Fault:
        return cls(status=status, message=message, headers={"Retry-After": retry_after} if retry_after else {})

    @classmethod
    def malformed(cls, body: bytes = b'{"embeddings": {"float": [[0.1, ') -> Fault:
        """A 200 whose body is not JSON (a proxy's truncated answer)."""
        return cls(body=body)

    @property
    def spoils(self) -> bool:
        return self.dim is not None or self.rows is not None or self.poison is not None


@dataclass
class Request:
    """One request as received."""

    number: int  # from 1, in arrival order
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict
    status: int | None = None  # the status answered; None while unanswered (or never: a hang)

    @property
    def texts(self) -> list[str]:
        """The texts the request paid for: embed inputs, or rerank documents."""
        return list(self.body.get("texts") or self.body.get("input") or self.body.get("documents") or [])


class FakeApi:
    """The server; use as a context manager. ``url`` is the Cohere base URL, ``url + "/v1"`` Voyage's."""

    def __init__(self, key: str | None = KEY, delay: float = 0.0):  # key None: any or no key is accepted
        self.key = key
        self.delay = delay  # every request waits this long (to make concurrency observable)
        self.requests: list[Request] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: deque[Fault | None] = deque()
        self._faults_at: dict[int, Fault] = {}
        self._lock = threading.Condition()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True  # a hung handler must not block shutdown
        self._server.api = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeApi:
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()  # releases hung and delayed handlers
        self._server.shutdown()
        self._server.server_close()

    def script(self, *faults: Fault | None) -> None:
        """Answer the next requests with these faults, in order (None: answer normally)."""
        self._faults.extend(faults)

    def fault_at(self, number: int, fault: Fault) -> None:
        """Answer request ``number`` (counting from 1 over the server's life) with ``fault``."""
        self._faults_at[number] = fault

    @property
    def paid_texts(self) -> Counter:
        """``{text: times}`` over the requests answered 2xx (even with a spoiled body): what a real API bills."""
        with self._lock:
            return Counter(t for r in self.requests if r.status is not None and 200 <= r.status < 300 for t in r.texts)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until ``count`` requests have arrived; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    def _receive(self, path: str, headers: dict[str, str], body: dict) -> tuple[Request, Fault | None]:
        with self._lock:
            request = Request(len(self.requests) + 1, path, headers, body)
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._lock.notify_all()
            fault = self._faults_at.pop(request.number, None) or (self._faults.popleft() if self._faults else None)
        return request, fault

    def route(self, path: str):
        """The function answering ``path`` (``body -> (status, body)``), or None for a 404."""
        return ROUTES.get(path)

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def answer(self, request: Request, fault: Fault | None) -> tuple[int, object, dict[str, str]] | None:
        """Status, body and headers for ``request``; None to send nothing."""
        if fault and fault.hang:
            self._stopped.wait()
            return None
        wait = self.delay + (fault.delay if fault else 0.0)
        if wait:
            self._stopped.wait(wait)
        if self.key is not None and request.headers.get("authorization") != f"Bearer {self.key}":
            return 401, self.error_body(request.path, "invalid api token"), {}
        if fault and fault.status != 200 and fault.body is None:
            return fault.status, self.error_body(request.path, fault.message), fault.headers
        if fault and fault.body is not None:
            return fault.status, fault.body, fault.headers
        route = self.route(request.path)
        if route is None:
            return 404, self.error_body(request.path, f"no route {request.path}"), {}
        if fault and fault.spoils:
            status, body = route({**request.body, **({"output_dimension": fault.dim, "dimensions": fault.dim} if fault.dim else {})})
            return status, _spoil(body, fault), fault.headers
        status, body = route(request.body)
        return status, body, fault.headers if fault else {}

    def error_body(self, path: str, message: str) -> object:
        """The service's error body for a request to ``path``: Voyage's ``{"detail"}`` under /v1, else Cohere's."""
        return _error(path.startswith("/v1/"), message)


def _spoil(body: dict, fault: Fault) -> dict:
    """Cut the vectors of an embed answer to ``fault.rows`` and poison the first one (Cohere or Voyage shape)."""
    if "embeddings" in body:
        vectors = body["embeddings"].get("float", [])
    else:
        vectors = [item["embedding"] for item in body.get("data", [])]
    if fault.poison is not None and vectors:
        first = vectors[0]
        if isinstance(first, str):  # Voyage's base64
            numbers = np.frombuffer(base64.b64decode(first), dtype="<f4").copy()
            numbers[0] = fault.poison
            body["data"][0]["embedding"] = base64.b64encode(numbers.tobytes()).decode()
        else:
            first[0] = fault.poison
    if fault.rows is not None:
        if "embeddings" in body:
            del body["embeddings"]["float"][fault.rows :]
        else:
            del body["data"][fault.rows :]
    return body


def _error(voyage: bool, message: str) -> dict:
    return {"detail": message} if voyage else {"id": str(uuid.uuid4()), "message": message}


def cohere_embed(body: dict) -> tuple[int, dict]:
    texts = body.get("texts") or []
    if len(texts) > COHERE_MAX_TEXTS:
        return 400, _error(False, f"invalid request: total number of texts must be at most {COHERE_MAX_TEXTS} - received {len(texts)}")
    dim = body.get("output_dimension") or DIM
    kinds = body.get("embedding_types") or ["float"]
    embeddings = {"float": [fake_vector(t, dim) for t in texts]} if "float" in kinds else {}
    meta = {"api_version": {"version": "2"}, "billed_units": {"input_tokens": sum(fake_tokens(t) for t in texts)}}
    return 200, {"id": str(uuid.uuid4()), "embeddings": embeddings, "texts": texts, "meta": meta, "response_type": "embeddings_by_type"}


def cohere_rerank(body: dict) -> tuple[int, dict]:
    docs = body.get("documents") or []
    results = sorted(({"index": i, "relevance_score": fake_score(body["query"], d)} for i, d in enumerate(docs)), key=lambda r: -r["relevance_score"])
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": math.ceil(len(docs) / 100)}}
    return 200, {"id": str(uuid.uuid4()), "results": results[: body.get("top_n") or None], "meta": meta}


def voyage_embeddings(body: dict) -> tuple[int, dict]:
    texts = body.get("input") or []
    if len(texts) > VOYAGE_MAX_TEXTS:
        return 400, _error(True, f"The batch size limit is {VOYAGE_MAX_TEXTS}. Your batch size is {len(texts)}.")
    dim = body.get("output_dimension") or DIM
    vectors = [fake_vector(t, dim) for t in texts]
    if body.get("encoding_format") == "base64":  # what the SDK asks for unless told otherwise
        vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)]
    usage = {"total_tokens": sum(fake_tokens(t) for t in texts)}
    return 200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}


def voyage_rerank(body: dict) -> tuple[int, dict]:
    docs = body.get("documents") or []
    data = sorted(({"relevance_score": fake_score(body["query"], d), "index": i} for i, d in enumerate(docs)), key=lambda r: -r["relevance_score"])
    tokens = len(docs) * fake_tokens(body["query"]) + sum(fake_tokens(d) for d in docs)
    return 200, {"object": "list", "data": data[: body.get("top_k") or None], "model": body.get("model"), "usage": {"total_tokens": tokens}}


ROUTES = {"/v2/embed": cohere_embed, "/v2/rerank": cohere_rerank, "/v1/embeddings": voyage_embeddings, "/v1/rerank": voyage_rerank}


OPENAI_MAX_TEXTS = 2048  # inputs per embeddings request
OPENAI_MAX_TOKENS = 300_000  # tokens per embeddings request, summed over its inputs
OPENAI_CONTEXT = 8192  # tokens per input
TEI_MAX_TEXTS = 32  # TEI's default max_client_batch_size


class FakeOpenAI(FakeApi):
    """An OpenAI-compatible embeddings server and the two ``/rerank`` shapes, on 127.0.0.1.

    ``POST /v1/embeddings`` answers as OpenAI does (``data[].index``, ``usage.prompt_tokens``, base64
    float32 when ``encoding_format`` asks), in reverse order unless ``reverse`` is False (a client must
    follow ``index``), and enforces OpenAI's caps (2048 inputs, 300,000 tokens a request, 8192 an input;
    tokens are words + 1) with OpenAI's error shape. ``models``: the names served (None: any; another
    is OpenAI's 404). ``POST /rerank`` is TEI's (``texts``, at most 32; ``[{"index", "score"}]``),
    ``POST /v1/rerank`` Jina's and Cohere's shape (``model``, ``documents``, ``top_n``;
    ``{"results": [{"index", "relevance_score"}]}``). Base URLs: ``url + "/v1"`` for embeddings and
    the Cohere shape, ``url`` for TEI's rerank.
    """

    def __init__(self, key: str | None = KEY, delay: float = 0.0, models: set[str] | None = None, reverse: bool = True):
        super().__init__(key, delay)
        self.models = models
        self.reverse = reverse

    def route(self, path: str):
        return {"/v1/embeddings": self.embeddings, "/rerank": tei_rerank, "/v1/rerank": cohere_shaped_rerank}.get(path)

    def error_body(self, path: str, message: str) -> object:
        if path == "/rerank":
            return _tei_error(message)
        if path == "/v1/rerank":
            return {"detail": message}
        return _openai_error(message)

    def embeddings(self, body: dict) -> tuple[int, dict]:
        texts = body.get("input") or []
        if self.models is not None and body.get("model") not in self.models:
            return 404, _openai_error(f"The model `{body.get('model')}` does not exist or you do not have access to it.", "model_not_found")
        if problem := _openai_limits(texts):
            return 400, _openai_error(problem)
        dim = body.get("dimensions") or body.get("output_dimension") or DIM
        vectors = [fake_vector(t, dim) for t in texts]
        if body.get("encoding_format") == "base64":
            vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        tokens = sum(fake_tokens(t) for t in texts)
        return 200, {"object": "list", "data": data[::-1] if self.reverse else data, "model": body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _openai_limits(texts: list[str]) -> str | None:
    if len(texts) > OPENAI_MAX_TEXTS:
        return f"'$.input' is invalid: too many inputs. The max number of inputs is {OPENAI_MAX_TEXTS}, got {len(texts)}."
    longest = max((fake_tokens(t) for t in texts), default=0)
    if longest > OPENAI_CONTEXT:
        return f"This model's maximum context length is {OPENAI_CONTEXT} tokens, however you requested {longest} tokens. Please reduce your prompt."
    total = sum(fake_tokens(t) for t in texts)
    if total > OPENAI_MAX_TOKENS:
        return f"Requested {total} tokens, max {OPENAI_MAX_TOKENS} tokens per request"
    return None


def _openai_error(message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _tei_error(message: str) -> dict:
    return {"error": message, "error_type": "Validation"}


def tei_rerank(body: dict) -> tuple[int, object]:
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        return 422, _tei_error("Failed to deserialize the JSON body into the target type: missing field `texts`")
    if len(texts) > TEI_MAX_TEXTS:
        return 413, _tei_error(f"batch size {len(texts)} > maximum allowed batch size {TEI_MAX_TEXTS}")
    return 200, sorted(({"index": i, "score": fake_score(body["query"], t)} for i, t in enumerate(texts)), key=lambda r: -r["score"])


def cohere_shaped_rerank(body: dict) -> tuple[int, object]:
    docs = body.get("documents")
    if not body.get("model") or not isinstance(docs, list):
        return 422, {"detail": "model and documents are required"}
    results = sorted(({"index": i, "relevance_score": fake_score(body["query"], d), "document": {"text": d}} for i, d in enumerate(docs)), key=lambda r: -r["relevance_score"])
    tokens = len(docs) * fake_tokens(body["query"]) + sum(fake_tokens(d) for d in docs)
    return 200, {"model": body["model"], "results": results[: body.get("top_n") or None], "usage": {"total_tokens": tokens}}

class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        api: FakeApi = self.server.api
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        request, fault = api._receive(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            answer = api.answer(request, fault)
            if answer is not None:
                request.status = answer[0]
                self._send(*answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before the answer came
        finally:
            api._done()

    def _send(self, status: int, body: object, headers: dict[str, str]) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass  # keep pytest output clean; FakeApi.requests is the log
