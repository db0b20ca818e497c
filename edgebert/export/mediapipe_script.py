"""Run a .tflite in MediaPipe Tasks (TextEmbedder or TextClassifier), in MediaPipe's own Python environment.

Self-contained on purpose (standard library + mediapipe): edgebert never imports it. It starts this file
with the interpreter that EDGEBERT_MEDIAPIPE_PYTHON names, because mediapipe 0.10.21 cannot share an
environment with edgebert (installing it beside torch 2.13 downgrades numpy to 1.26, protobuf to 4.25 and
jax to 0.7.1). MediaPipe tokenizes the raw texts itself, from the vocabulary packed in the file's metadata,
exactly as an Android, iOS or web app would.

Request, JSON on stdin:  {"model": PATH, "task": "embedding" | "classification", "texts": [...],
                          "metadata": true}
Answer, JSON on stdout:  {"mediapipe_version", "loaded": bool, "error": str | null,
                          "outputs": [[float, ...], ...] (embeddings, or scores in label order),
                          "metadata": {"json": str, "packed_files": [...]} | null}
"""

import json
import os
import sys

# This file sits among edgebert's modules; none of them may shadow mediapipe's imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]


def _metadata(path):
    from mediapipe.tasks.python.metadata import metadata

    try:
        displayer = metadata.MetadataDisplayer.with_model_file(path)
    except Exception as exc:  # no metadata at all: say so, the caller decides
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"json": displayer.get_metadata_json(), "packed_files": sorted(displayer.get_packed_associated_file_list())}


def _embedder(path):
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = text.TextEmbedderOptions(base_options=BaseOptions(model_asset_path=path))
    task = text.TextEmbedder.create_from_options(options)
    return lambda t: [float(x) for x in task.embed(t).embeddings[0].embedding]


def _classifier(path):
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=path), max_results=-1)
    task = text.TextClassifier.create_from_options(options)

    def run(t):
        categories = task.classify(t).classifications[0].categories
        scores = [0.0] * (1 + max(c.index for c in categories))
        for c in categories:
            scores[c.index] = float(c.score)
        return scores

    return run


def main():
    request = json.load(sys.stdin)
    import mediapipe

    answer = {"mediapipe_version": mediapipe.__version__, "loaded": False, "error": None, "outputs": []}
    answer["metadata"] = _metadata(request["model"]) if request.get("metadata") else None
    try:
        run = (_classifier if request["task"] == "classification" else _embedder)(request["model"])
        answer["loaded"] = True
        answer["outputs"] = [run(t) for t in request["texts"]]
    except Exception as exc:  # the answer is the verdict: loading or running failed, and why
        answer["error"] = f"{type(exc).__name__}: {exc}"
    sys.stdout.flush()
    os.write(1, b"\n" + json.dumps(answer).encode() + b"\n")  # the last line: native logs may precede it


if __name__ == "__main__":
    main()
