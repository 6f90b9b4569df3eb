"""BentoML (a `@bentoml.service` class with a synchronous `@bentoml.api`), served by
`bentoml serve` with `workers` processes. Its batching (`batchable=True`) merges array inputs on
one axis, not the (n, seed) of a samples request, so it stays off. Body {"n", "seed"} to
/samples; answer {"samples": [[...], ...]}."""

import os
import sys
from pathlib import Path

import bentoml

from bench.peer_servers.generator import model_drawer, server_arguments


# `bentoml serve` imports this module in each worker: the model and the worker count come from
# the environment that main() sets.
@bentoml.service(workers=int(os.environ.get("PEER_WORKERS", "2")))
class Generator:
    def __init__(self) -> None:
        self.draw = model_drawer(os.environ["PEER_MODEL"])

    @bentoml.api
    def samples(self, n: int, seed: int) -> dict:
        return {"samples": self.draw(n, seed).tolist()}


def main() -> None:
    args = server_arguments()
    os.environ |= {"PEER_MODEL": args.model, "PEER_WORKERS": str(args.workers)}
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    service = "bench.peer_servers.serve_bentoml:Generator"
    command = ["serve", service, "--host", "127.0.0.1", "--port", str(args.port)]
    os.execv(bentoml_cli, [bentoml_cli, *command])


if __name__ == "__main__":
    main()
