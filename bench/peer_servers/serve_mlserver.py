"""MLServer with a custom runtime (mlserver.MLModel), as its docs show one: a model folder with
model-settings.json (the runtime's import path, adaptive batching: `max_batch_size`,
`max_batch_time`) and settings.json (`parallel_workers` inference processes), started with
`mlserver start`. Open Inference Protocol (V2) JSON: inputs `n` and `seed`, INT64 [1, 1] each;
output `samples` [1, n, *sample shape] FP32. MLServer's REST API has no binary tensor extension
(its raw tensors are gRPC's `raw_output_contents`); its way to send bytes over REST is the
`base64` content type (Base64Codec), so the model `<model>-npy` (the same runtime, format "npy")
answers each request's samples as one BYTES element [1, 1]: a base64 .npy file."""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import Base64Codec, NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peer_servers.generator import merged_samples, model_drawer, npy_bytes, server_arguments


class Generator(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self.draw, self.npy = model_drawer(extra["model"]), extra.get("format") == "npy"
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        values = {i.name: NumpyCodec.decode_input(i).reshape(-1) for i in payload.inputs}
        requests = list(zip(values["n"].tolist(), values["seed"].tolist(), strict=True))
        samples = merged_samples(self.draw, requests)  # adaptive batching: k requests
        if self.npy:
            output = Base64Codec.encode_output("samples", [npy_bytes(s) for s in samples])
        else:
            output = NumpyCodec.encode_output("samples", np.stack(samples))  # [k, n, ...]
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
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, extra in ((args.model, {}), (f"{args.model}-npy", {"format": "npy"})):
        model = {
            "name": name,
            "implementation": "bench.peer_servers.serve_mlserver.Generator",
            "parameters": {"extra": {"model": args.model, **extra}},
            "max_batch_size": 16,
            "max_batch_time": 0.002,
        }
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(json.dumps(model))
    mlserver = str(Path(sys.executable).with_name("mlserver"))
    os.execv(mlserver, [mlserver, "start", str(folder)])


if __name__ == "__main__":
    main()
