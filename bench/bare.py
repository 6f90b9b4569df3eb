"""The Flask half of the load ceiling (bench/load.py --baseline): the samples route with no model.

A Flask app, run by the same gunicorn settings as the service, that parses the same JSON body
and answers the same JSON shape (model, version, seed, shape, n rows of 2 float32 decimals) from
a fixed batch: what gunicorn, Flask and the JSON of the answer cost per request with no
onnxruntime run and none of the service's own steps.
"""

import numpy as np
from flask import Flask, jsonify, request

from service.floats import float32_decimals

MAX_ROWS = 4096
ROWS = float32_decimals(np.random.default_rng(0).standard_normal((MAX_ROWS, 2), np.float32))
FIXED = ROWS.tolist()

app = Flask(__name__)


@app.get("/readyz")
def ready() -> dict:
    return {"ready": True}


@app.post("/v1/models/<name>/samples")
def samples(name: str):
    body = request.get_json(force=True)
    n = min(int(body.get("n", 64)), MAX_ROWS)
    seed = int(body.get("seed", 0))
    return jsonify(model=name, version=1, seed=seed, shape=[n, 2], samples=FIXED[:n])
