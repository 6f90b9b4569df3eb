"""PyTriton (tritonserver inside the wheel, the Python function bound with `Triton.bind`), as its
docs show dynamic batching: `@batch` on the function, `ModelConfig(max_batch_size=...)` with a
`DynamicBatcher`, one bound function per model instance. Open Inference Protocol (V2) JSON:
inputs `n` and `seed`, INT64 [1, 1] each; output `samples` [1, n, *sample shape] FP32."""

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peer_servers.generator import merged_samples, model_drawer, server_arguments


def infer_function(model: str):
    draw = model_drawer(model)

    @batch
    def infer(n: np.ndarray, seed: np.ndarray) -> dict[str, np.ndarray]:
        requests = list(zip(n.reshape(-1).tolist(), seed.reshape(-1).tolist(), strict=True))
        return {"samples": np.stack(merged_samples(draw, requests))}

    return infer


def main() -> None:
    args = server_arguments()
    sample_shape = model_drawer(args.model).session.get_outputs()[0].shape[1:]
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        grpc_port=args.port + 1,
        metrics_port=args.port + 2,
        allow_grpc=False,
        allow_metrics=False,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.model,
            infer_func=[infer_function(args.model) for _ in range(args.workers)],
            inputs=[
                Tensor(name="n", dtype=np.int64, shape=(1,)),
                Tensor(name="seed", dtype=np.int64, shape=(1,)),
            ],
            outputs=[Tensor(name="samples", dtype=np.float32, shape=(-1, *sample_shape))],
            config=ModelConfig(
                max_batch_size=16, batcher=DynamicBatcher(max_queue_delay_microseconds=500)
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
