"""The Flask half of the load ceiling (bench/load.py --baseline): the samples route with no model.

`app`: a Flask app, run by the same gunicorn settings as the service, that parses the same JSON
body and answers the same JSON shape (model, version, seed, shape, n rows of 2 float32
decimals) from a fixed batch, or the same rows as a .npy file when the request accepts
application/x-npy (as the service does): what gunicorn, Flask and the answer's encoding cost per
request with no onnxruntime run and none of the service's own steps.

`model_app`: the same route doing the model's work and nothing else: the seed's latents, one
onnxruntime run with the service's session settings (bench/peer_servers/generator.py, the
peers' own), the samples as the service's JSON (orjson). No validation, metrics, guard,
batching or hooks: what the service's own steps add is the difference.
"""

import io

import numpy as np
from flask import Flask, Response, jsonify, request

from bench.peer_servers.generator import model_drawer
from service.floats import float32_decimals, json_bytes

MAX_ROWS = 4096
ARRAY = np.random.default_rng(0).standard_normal((MAX_ROWS, 2), np.float32)
FIXED = float32_decimals(ARRAY).tolist()

app = Flask(__name__)


@app.get("/readyz")
def ready() -> dict:
    return {"ready": True}


@app.post("/v1/models/<name>/samples")
def samples(name: str):
    body = request.get_json(force=True)
    n = min(int(body.get("n", 64)), MAX_ROWS)
    seed = int(body.get("seed", 0))
    if request.accept_mimetypes.best == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, ARRAY[:n], allow_pickle=False)
        return Response(buffer.getvalue(), mimetype="application/x-npy")
    return jsonify(model=name, version=1, seed=seed, shape=[n, 2], samples=FIXED[:n])


model_app = Flask(__name__)
DRAWERS = {}  # model name -> its drawer, made by the worker's first request (after the fork)


@model_app.get("/readyz")
def model_ready() -> dict:
    return {"ready": True}


@model_app.post("/v1/models/<name>/samples")
def model_samples(name: str) -> Response:
    draw = DRAWERS.get(name) or DRAWERS.setdefault(name, model_drawer(name))
    body = request.get_json(force=True)
    n, seed = int(body["n"]), int(body["seed"])
    output = draw.session.run(None, {draw.input_name: draw.noise(n, seed)})[0]
    answer = {"model": name, "version": 1, "seed": seed, "shape": list(output.shape)}
    return Response(json_bytes({**answer, "samples": output}), mimetype="application/json")
