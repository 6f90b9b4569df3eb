"""BentoML (a `@bentoml.service` class with a synchronous `@bentoml.api`), served by
`bentoml serve` with `workers` processes. Its batching (`batchable=True`) merges array inputs on
one axis, not the (n, seed) of a samples request, so it stays off. Body {"n", "seed"} to
/samples; answer {"samples": [[...], ...]}. The same body to /samples_npy answers a .npy file,
as its docs show a file output: a `Path` annotated with its ContentType, written into the
request's temporary folder (`context.temp_dir`) and sent by BentoML (its numpy outputs are JSON
lists, and its pickle serde is refused by a served Bento's main server)."""

import os
import sys
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import ContentType

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

    @bentoml.api
    def samples_npy(
        self, n: int, seed: int, context: bentoml.Context
    ) -> Annotated[Path, ContentType("application/x-npy")]:
        path = Path(context.temp_dir) / "samples.npy"
        np.save(path, self.draw(n, seed), allow_pickle=False)
        return path


def main() -> None:
    args = server_arguments()
    os.environ |= {"PEER_MODEL": args.model, "PEER_WORKERS": str(args.workers)}
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    service = "bench.peer_servers.serve_bentoml:Generator"
    command = ["serve", service, "--host", "127.0.0.1", "--port", str(args.port)]
    os.execv(bentoml_cli, [bentoml_cli, *command])


if __name__ == "__main__":
    main()
