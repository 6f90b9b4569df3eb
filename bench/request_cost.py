"""Where the CPU time of one small samples request goes, in one process (no sockets, no load).

    python -m bench.request_cost                  # ring8-gan, n=64, JSON
    python -m bench.request_cost --n 64 --repeats 7

Builds the service app (the bundled models, CPU provider, Prometheus multiprocess mode as under
gunicorn) and prints a table of CPU microseconds: the whole request through Flask's test client
(one thread, so no queueing and no lock contention), the same request to bench/bare.py (Flask
and the same JSON, no model), then each step of the request timed alone: the generator's
onnxruntime run, the seeded latents, the JSON answer (and its JSON text alone: the samples as
shortest float32 decimals), the inference metrics of one request, the guard's slot and the
dynamic batcher's hand-off for a lone request. Best of --repeats rounds of --requests calls
each; the test client's own cost is part of the first two rows. bench/load.py measures the
same path under load.
"""

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial

ROUND = Callable[[], object]


def cpu_us(work: ROUND, calls: int, repeats: int) -> float:
    """Best over `repeats` rounds of the CPU microseconds per call of work() (all threads)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            work()
        best = min(best, time.process_time() - started)
    return 1e6 * best / calls


def steps(app, model: str, n: int) -> dict[str, ROUND]:
    """The request and its steps as calls, in the order of the table."""
    from bench.bare import app as bare
    from lab.sampling import generator_drawer
    from service import metrics
    from service.api.inference import batchers, guard
    from service.api.models import SampleRequest, samples_response
    from service.batching import Batcher
    from service.floats import json_bytes

    client, body = app.test_client(), json.dumps({"n": n, "seed": 1})
    entry = app.extensions["repository"].get(model)
    version = entry.versions[entry.latest_version()]
    draw = generator_drawer(version.session, entry.card, 8192)
    inputs = draw.inputs(n, 1)
    batch = draw.session.run(None, inputs)[0]

    def request(client=client) -> None:
        client.post(f"/v1/models/{model}/samples", data=body, content_type="application/json")

    def answer() -> None:
        samples_response(SampleRequest(entry, version, n, 1), batch, "application/json")

    lone = Batcher(lambda _: batch, batchers().settings, guard(), model, version.number)
    return {
        "whole request (test client)": request,
        "the same request to bench/bare.py (no model)": partial(request, bare.test_client()),
        "onnxruntime run": lambda: draw.session.run(None, inputs),
        "latents": lambda: draw.inputs(n, 1),
        "JSON answer (service.api.models.samples_response)": answer,
        "  of which the JSON text (service.floats.json_bytes)": partial(
            json_bytes, {"samples": batch}
        ),
        "inference metrics (observe_inference)": partial(
            metrics.observe_inference, model, version.number, n, 0.001
        ),
        "guard slot (no work)": lambda: guard().run(int, bounded=True),
        "batcher hand-off, lone request": lambda: lone.submit(inputs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ring8-gan")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1000, help="calls per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best is kept")
    args = parser.parse_args()
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="request-cost-"))
    from service.app import create_app
    from service.config import ServiceConfig

    with tempfile.TemporaryDirectory() as folder:
        config = ServiceConfig.from_env({**os.environ, "DEVICE": "cpu", "DATA_DIR": folder})
        app = create_app(config)
        with app.test_request_context():
            rows = [
                (name, cpu_us(work, args.requests, args.repeats))
                for name, work in steps(app, args.model, args.n).items()
            ]
    print(f"| step ({args.model}, n={args.n}, JSON) | CPU us per request |\n|---|---|")
    for name, micros in rows:
        print(f"| {name} | {micros:.1f} |")


if __name__ == "__main__":
    main()
