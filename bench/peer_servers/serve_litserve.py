"""LitServe (litserve.LitAPI + LitServer), as its docs show batching: `max_batch_size` and
`batch_timeout` on the server, `batch()`/`unbatch()` on the API, `workers_per_device` inference
processes behind `num_api_servers` uvicorn processes. Body {"n", "seed"} to /predict; answer
{"samples": [[...], ...]}; with "format": "npy" in the body, the samples as a .npy file: the
`Response` that its docs show `encode_response` returning for binary answers."""

import litserve as ls
from fastapi import Response

from bench.peer_servers.generator import merged_samples, model_drawer, npy_bytes, server_arguments


class GeneratorAPI(ls.LitAPI):
    def __init__(self, model: str, **batching: float) -> None:
        super().__init__(**batching)
        self.model = model

    def setup(self, device: str) -> None:
        self.draw = model_drawer(self.model)

    def decode_request(self, request: dict) -> tuple[int, int, bool]:
        return int(request["n"]), int(request["seed"]), request.get("format") == "npy"

    def batch(self, inputs: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
        return inputs

    def predict(self, requests):
        if isinstance(requests, tuple):  # a lone request (no batching)
            return self.draw(*requests[:2]), requests[2]
        samples = merged_samples(self.draw, [request[:2] for request in requests])
        return [(each, request[2]) for each, request in zip(samples, requests, strict=True)]

    def unbatch(self, outputs: list) -> list:
        return outputs

    def encode_response(self, output):
        samples, npy = output
        if npy:
            return Response(npy_bytes(samples), media_type="application/x-npy")
        return {"samples": samples.tolist()}


def main() -> None:
    args = server_arguments()
    api = GeneratorAPI(args.model, max_batch_size=16, batch_timeout=0.002)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=args.workers,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
