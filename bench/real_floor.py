"""Benchmark floor: what real data scores on an image benchmark's own protocol.

    python -m bench.real_floor stacked-mnist                 # 26,000 real stacks, 3 draws
    python -m bench.real_floor stacked-digits --draws 5
    python -m bench.real_floor stacked-digits4 --samples 260000 --modes-only

Each draw is `--samples` images from the dataset's own class-balanced sampler (the training
digits, stacked as the benchmark stacks them: exactly the distribution a generator is trained
to match), torch generator seed 0, 1, 2..., diagnosed as a model's samples are
(trainer.evaluation.diagnose_samples against the bundled reference and its classifier). A
generator's numbers are comparable with these, not with zero: at 26,000 samples even real
stacks leave a KL above 0 and a confident share below 100%. Prints a markdown table.
"""

import argparse
import time

import torch

from trainer.datasets import IMAGE_DATASETS, get_dataset
from trainer.evaluation import diagnose_samples, protocol_numbers


def measure(dataset, samples: int, seed: int, modes_only: bool) -> dict:
    """The table's numbers (protocol_numbers) of one draw of the dataset, and its seconds."""
    images = dataset.sample(samples, torch.Generator().manual_seed(seed)).numpy()
    start = time.perf_counter()
    report = diagnose_samples(images, dataset.name, modes_only=modes_only)
    return protocol_numbers(report) | {"seconds": time.perf_counter() - start}


def row(seed: int, numbers: dict) -> str:
    """One markdown row."""
    coverage = numbers.get("coverage")
    cells = [
        f"seed {seed}",
        f"{numbers['modes_covered']:,} of {numbers['modes_total']:,}",
        f"{100 * numbers['high_quality_fraction']:.2f}%",
        f"{numbers['kl']:.4f} ({numbers['kl_exact']:.4f})",
        f"{numbers['modes_covered_all']:,}",
        f"{numbers['kl_all']:.4f}",
        "n/a" if coverage is None else f"{coverage:.3f} ({numbers['coverage_identical']:.3f})",
        numbers["verdict"],
        f"{numbers['seconds']:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=[d for d in IMAGE_DATASETS if d.startswith("stacked")])
    parser.add_argument("--samples", type=int, default=26_000)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--modes-only", action="store_true", help="no k-NN feature metrics")
    args = parser.parse_args()
    print(f"{args.dataset}: {args.samples:,} real stacks a draw, {args.draws} draws\n")
    print(
        "| draw | modes (confident) | confident | KL (confident; exact sampler with as many) "
        "| modes (every sample) | KL (every sample) | coverage (identical) | verdict | report s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    dataset = get_dataset(args.dataset)  # built once: the draws differ by seed only
    for seed in range(args.draws):
        print(row(seed, measure(dataset, args.samples, seed, args.modes_only)), flush=True)


if __name__ == "__main__":
    main()
