"""KServe's Python ModelServer (kserve.Model, the V1 protocol's `:predict`), as its docs show a
custom model: `load()` opens the session, a synchronous `predict()` answers, `--workers` uvicorn
processes (each unpickles the model and reopens its session). Body {"n", "seed"}; answer
{"predictions": [[...], ...]}."""

import sys
from pathlib import Path

# kserve reads its own flags from sys.argv when imported (its worker processes too): its access
# and per-request timing lines off, as the service's access log is in the benchmark.
sys.argv += ["--log_config_file", str(Path(__file__).with_name("quiet_logging.json"))]

from kserve import Model, ModelServer  # noqa: E402

from bench.peer_servers.generator import model_drawer, server_arguments  # noqa: E402


class Generator(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.draw = model_drawer(self.name)
        self.ready = True
        return self.ready

    def __getstate__(self) -> dict:  # --workers > 1 pickles the model: leave the session out
        state = dict(self.__dict__)
        state.pop("draw", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: dict, headers: dict | None = None) -> dict:
        samples = self.draw(int(payload["n"]), int(payload["seed"]))
        return {"predictions": samples.tolist()}


def main() -> None:
    args = server_arguments()
    server = ModelServer(
        http_port=args.port,
        workers=args.workers,
        enable_grpc=False,
        enable_latency_logging=False,
    )
    server.start([Generator(args.model)])


if __name__ == "__main__":
    main()
