"""MLServer with a custom runtime (mlserver.MLModel), as its docs show one: a model folder with
model-settings.json (the runtime's import path, adaptive batching: `max_batch_size`,
`max_batch_time`) and settings.json (`parallel_workers` inference processes), started with
`mlserver start`. Open Inference Protocol (V2) JSON: inputs `n` and `seed`, INT64 [1, 1] each;
output `samples` [1, n, *sample shape] FP32."""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peer_servers.generator import merged_samples, model_drawer, server_arguments


class Generator(MLModel):
    async def load(self) -> bool:
        self.draw = model_drawer(self.settings.parameters.extra["model"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        values = {i.name: NumpyCodec.decode_input(i).reshape(-1) for i in payload.inputs}
        requests = list(zip(values["n"].tolist(), values["seed"].tolist(), strict=True))
        samples = np.stack(merged_samples(self.draw, requests))  # adaptive batching: [k, n, ...]
        output = NumpyCodec.encode_output("samples", samples)
        return InferenceResponse(model_name=self.name, outputs=[output])


def main() -> None:
    args = server_arguments()
    folder = Path(tempfile.mkdtemp(prefix="mlserver-"))
    settings = {
        "http_port": args.port,
        "grpc_port": args.port + 1,
        "metrics_port": args.port + 2,
        "parallel_workers": args.workers,
        "host": "127.0.0.1",
        "metrics_dir": str(folder / "metrics"),  # its default is .metrics in the working folder
    }
    model = {
        "name": args.model,
        "implementation": "bench.peer_servers.serve_mlserver.Generator",
        "parameters": {"extra": {"model": args.model}},
        "max_batch_size": 16,
        "max_batch_time": 0.002,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / args.model).mkdir()
    (folder / args.model / "model-settings.json").write_text(json.dumps(model))
    mlserver = str(Path(sys.executable).with_name("mlserver"))
    os.execv(mlserver, [mlserver, "start", str(folder)])


if __name__ == "__main__":
    main()
