"""LitServe (litserve.LitAPI + LitServer), as its docs show batching: `max_batch_size` and
`batch_timeout` on the server, `batch()`/`unbatch()` on the API, `workers_per_device` inference
processes behind `num_api_servers` uvicorn processes. Body {"n", "seed"} to /predict; answer
{"samples": [[...], ...]}."""

import litserve as ls

from bench.peer_servers.generator import merged_samples, model_drawer, server_arguments


class GeneratorAPI(ls.LitAPI):
    def __init__(self, model: str, **batching: float) -> None:
        super().__init__(**batching)
        self.model = model

    def setup(self, device: str) -> None:
        self.draw = model_drawer(self.model)

    def decode_request(self, request: dict) -> tuple[int, int]:
        return int(request["n"]), int(request["seed"])

    def batch(self, inputs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return inputs

    def predict(self, requests):
        if isinstance(requests, tuple):  # a lone request (no batching)
            return self.draw(*requests)
        return merged_samples(self.draw, requests)

    def unbatch(self, outputs: list) -> list:
        return outputs

    def encode_response(self, samples) -> dict:
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
