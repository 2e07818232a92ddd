r"""Serve the web demo (`export/web/`): an app-ready `.tflite` classifying typed text in the
browser through `@mediapipe/tasks-text`'s TextClassifier, all files from this machine.

    python -m export.serve --tflite=runs/road/fortunes_student_dynamic_int8.tflite
    # serve: http://127.0.0.1:8000/ ... open it in a browser; Ctrl-C stops

The page (`index.html`, `demo.js`, `demo.css`), the npm package's bundle and WebAssembly
(`export/web/node_modules/@mediapipe/tasks-text`, installed by scripts/install.sh with
`npm ci`) and the model (`/model.tflite`, its labels and name at `/model.json`) are served
by a threaded stdlib HTTP server; nothing comes from a CDN. It writes no files.
"""

from __future__ import annotations

import http.server
import json
import os
import posixpath
import signal
import sys
import urllib.parse

from absl import app, flags

from export import flags as export_flags

export_flags.define_serve_flags()
FLAGS = flags.FLAGS

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
PACKAGE = "@mediapipe/tasks-text"
PACKAGE_DIR = os.path.join(WEB_DIR, "node_modules", *PACKAGE.split("/"))
PACKAGE_URL = "/mediapipe/tasks-text/"
PAGE_FILES = {"/": "index.html", "/index.html": "index.html", "/demo.js": "demo.js",
              "/demo.css": "demo.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".wasm": "application/wasm", ".json": "application/json; charset=utf-8",
         ".map": "application/json; charset=utf-8", ".tflite": "application/octet-stream"}


def package_version() -> str:
    """The installed @mediapipe/tasks-text version; ExportError when it is not installed."""
    from kbert.export.task_model import ExportError
    try:
        with open(os.path.join(PACKAGE_DIR, "package.json"), encoding="utf-8") as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        raise ExportError(f"{PACKAGE} is not installed in {PACKAGE_DIR}: run "
                          f"scripts/install.sh (or `npm ci` in {WEB_DIR})") from None
    if not os.path.isfile(os.path.join(PACKAGE_DIR, "wasm", "text_wasm_internal.wasm")):
        raise ExportError(f"{PACKAGE} in {PACKAGE_DIR} has no wasm/ files: run `npm ci` "
                          f"in {WEB_DIR}")
    return version


def read_app_model(path: str) -> tuple[bytes, dict]:
    """(the bytes, what the page shows) of an app-ready kbert `.tflite`; ExportError naming
    the file when it is missing, not kbert's, or has no TFLite Model Metadata to load."""
    from kbert.export import app_metadata
    from kbert.export.metadata import read_tflite_metadata
    from kbert.export.task_model import ExportError
    if not os.path.isfile(path):
        raise ExportError(f"--tflite not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        meta = read_tflite_metadata(data)
    except ValueError as e:
        raise ExportError(f"--tflite={path}: {str(e).removeprefix('this .tflite: ')}") from None
    try:
        standard = app_metadata.describe(data)
        app_metadata.input_order(data)
        packed = app_metadata.associated_files(data)
    except Exception:   # noqa: BLE001 — any unreadable structure is "not app-ready"
        standard, packed = None, {}
    needed = {app_metadata.LABELS_FILE, *meta.get("tokenizer", {}).get("files", {})}
    if meta.get("profile") != "app" or not standard or not needed <= set(packed):
        raise ExportError(f"--tflite={path} is not app-ready (it needs TFLite Model "
                          f"Metadata with the tokenizer and labels files packed, one "
                          f"signature): export it with export.tflite's default "
                          f"--signature=app")
    info = {"file": os.path.basename(path), "bytes": len(data), "name": standard.get("name"),
            "normalize": text_normalization(meta), "labels": meta["labels"],
            "max_seq_length": meta["max_seq_length"], "mode": meta.get("mode"),
            "family": meta.get("family"), "package": PACKAGE, "package_version": package_version()}
    return data, info


def text_normalization(meta: dict) -> str:
    """Which of docs/EDGE.md's `normalizeForModel` lines the page applies before `classify`:
    "uncased" (BERT / DistilBERT uncased WordPiece), "albert" (SentencePiece) or "none"."""
    tokenizer = meta.get("tokenizer", {})
    if tokenizer.get("type") == "sentencepiece":
        return "albert"
    if tokenizer.get("type") == "wordpiece" and meta.get("do_lower_case",
                                                         tokenizer.get("lower_case")):
        return "uncased"
    return "none"


class DemoHandler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of the page, the npm package's files and the model; 404 for anything else."""
    model: bytes = b""
    info: dict = {}
    server_version = "kbert-serve"

    def _body(self) -> tuple[bytes, str] | None:
        path = urllib.parse.urlsplit(self.path).path
        if path in PAGE_FILES:
            return self._file(os.path.join(WEB_DIR, PAGE_FILES[path]))
        if path == "/model.tflite":
            return self.model, TYPES[".tflite"]
        if path == "/model.json":
            return json.dumps(self.info).encode(), TYPES[".json"]
        if path.startswith(PACKAGE_URL):
            relative = posixpath.normpath(urllib.parse.unquote(path[len(PACKAGE_URL):]))
            if relative.startswith((".", "/")):
                return None
            return self._file(os.path.join(PACKAGE_DIR, *relative.split("/")))
        return None

    @staticmethod
    def _file(path: str) -> tuple[bytes, str] | None:
        kind = TYPES.get(os.path.splitext(path)[1])
        if kind is None or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read(), kind

    def _answer(self, send_body: bool) -> None:
        found = self._body()
        if found is None:
            found, status = (b"not found\n", "text/plain; charset=utf-8"), 404
        else:
            status = 200
        body, kind = found
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 — http.server's name
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def log_message(self, format, *args):  # noqa: A002 — quiet: the page is the output
        pass


def make_server(tflite: str, host: str = "127.0.0.1", port: int = 0):
    """A threaded HTTP server for the demo on `tflite` (not yet serving) and its URL."""
    from kbert.export.task_model import ExportError
    data, info = read_app_model(tflite)
    handler = type("Handler", (DemoHandler,), {"model": data, "info": info})
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise ExportError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{server.server_address[1]}/", info


def run(fv) -> None:
    export_flags.require(fv, "tflite")
    server, url, info = make_server(fv.tflite, fv.host, fv.port)
    print(f"serve: {url} ({info['file']}: {len(info['labels'])} labels, "
          f"{PACKAGE} {info['package_version']}); Ctrl-C stops", flush=True)
    # Ctrl-C (SIGINT) and SIGTERM stop it: Python's own handler, set again here in case a
    # native library loaded above replaced it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv) -> int:
    if len(argv) > 1:
        print(f"serve: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return export_flags.EXIT_BAD_INPUT
    return export_flags.run_command("serve", lambda: run(FLAGS))


if __name__ == "__main__":
    app.run(main)
