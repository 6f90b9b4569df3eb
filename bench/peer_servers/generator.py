"""The work every peer does per request, the service's own: a model's samples for (n, seed),
drawn as the service draws them (lab.sampling.file_drawer: the card's latents from PCG64(seed),
one onnxruntime session with the service's CPU settings), alone or as one merged run for a
batch of requests (what each peer's own batching hands over); and the .npy bytes of samples, for
the peers whose binary answer is a file of the caller's choosing."""

import argparse
import io
import json
from pathlib import Path

import numpy as np

from lab.sampling import RowwiseDraw, file_drawer

MODELS = Path(__file__).resolve().parents[2] / "models"


def model_drawer(model: str) -> RowwiseDraw:
    """draw(n, seed) of the latest version of the gan `model` of the bundled repository."""
    card = json.loads((MODELS / model / "card.json").read_text())
    latest = max(version["version"] for version in card["versions"])
    return file_drawer(MODELS / model, card, latest)


def merged_samples(draw: RowwiseDraw, requests: list[tuple[int, int]]) -> list[np.ndarray]:
    """The samples of each (n, seed) request, from one run over their latents concatenated:
    each request gets the rows it gets alone (a generator's rows are independent)."""
    latents = [draw.noise(n, seed) for n, seed in requests]
    output = draw.session.run(None, {draw.input_name: np.concatenate(latents)})[0]
    bounds = np.cumsum([n for n, _ in requests])[:-1]
    return np.split(output, bounds)


def npy_bytes(samples: np.ndarray) -> bytes:
    """The samples as a .npy file (float32, shape in the header; no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, samples, allow_pickle=False)
    return buffer.getvalue()


def server_arguments() -> argparse.Namespace:
    """A serving script's --port, --model and --workers (other flags are left to the peer:
    KServe reads its own from sys.argv)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_known_args()[0]
