"""A fake Hugging Face hub on 127.0.0.1 that knows a few model ids, for testing what tunebench says of
a model id when the hub can be asked, through the real huggingface_hub client (``HfApi.model_info``,
``snapshot_download``'s revision lookup). Unknown ids get the hub's own 404 with ``X-Error-Code:
RepoNotFound``, which huggingface_hub turns into ``RepositoryNotFoundError``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/api/models/"


class FakeHub:
    def __init__(self, models: set[str]):
        self.models, self.asked = set(models), []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                model = "/".join(path.removeprefix(PREFIX).split("/")[:2]) if path.startswith(PREFIX) else ""
                hub.asked.append(model)
                if model in hub.models:
                    body, status, headers = {"id": model, "modelId": model, "sha": "0" * 40, "siblings": []}, 200, {}
                else:
                    body, status, headers = {"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"}
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
