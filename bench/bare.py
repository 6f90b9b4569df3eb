"""The Flask half of the load ceiling (bench/load.py --baseline): the samples route with no model.

A Flask app, run by the same gunicorn settings as the service, that parses the same JSON body
and answers the same JSON shape (model, version, seed, shape, n rows of 2 float32 decimals) from
a fixed batch, or the same rows as a .npy file when the request accepts application/x-npy (as
the service does): what gunicorn, Flask and the answer's encoding cost per request with no
onnxruntime run and none of the service's own steps.
"""

import io

import numpy as np
from flask import Flask, Response, jsonify, request

from service.floats import float32_decimals

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
