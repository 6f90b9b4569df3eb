"""KServe's Python ModelServer (kserve.Model), as its docs show a custom model: `load()` opens the
session, a synchronous `predict()` answers, `--workers` uvicorn processes (each unpickles the
model and reopens its session). JSON: the V1 protocol's `:predict`, body {"n", "seed"}, answer
{"predictions": [[...], ...]}. Binary: the Open Inference Protocol (V2) `/infer` with INT64
inputs `n` and `seed` and the binary tensor extension's `binary_data_output`, answered by
kserve's own `get_predict_response` (output `output-0`, [1, n, *sample shape] FP32)."""

import sys
from pathlib import Path

# kserve reads its own flags from sys.argv when imported (its worker processes too): its access
# and per-request timing lines off, as the service's access log is in the benchmark.
sys.argv += ["--log_config_file", str(Path(__file__).with_name("quiet_logging.json"))]

from kserve import InferRequest, Model, ModelServer  # noqa: E402
from kserve.utils.utils import get_predict_response  # noqa: E402

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

    def predict(self, payload: dict | InferRequest, headers: dict | None = None):
        if isinstance(payload, InferRequest):  # V2: [1, n, ...], binary when the request asks
            n, seed = (int(payload.get_input_by_name(k).as_numpy()[0, 0]) for k in ("n", "seed"))
            return get_predict_response(payload, self.draw(n, seed)[None], self.name)
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
