"""Where a stacked-digits model's KL comes from. Against the uniform reference over the
C-digit stacks, KL(q || uniform) splits exactly into the channels' one-digit marginals and the
dependence between channels:

    KL(q || u) = sum_c KL(q_c || uniform over 10 digits) + TC(q)

TC, the total correlation, is zero for a sampler whose channels are independent; on a finite
histogram it also holds the sampling noise (an exact sampler at N samples scores about
(10^C - 1) / 2N in all, nearly all of it TC). A marginal part well above the exact sampler's
says some digits are drawn, or confidently drawn, more often than others, whichever stacks they
sit in; a TC well above it says stacks are missing or repeated beyond what the digits explain.

For each source, 26,000 images (seed 0): a bundled model drawn as the service draws it (its
card's newest version, default settings), a GAN run's checkpoint (a folder holding
checkpoint.pt, its sampling generator on the same latents and, when conditional, the labels the
service draws by default), or `real` (the dataset's own class-balanced sampler, torch seed 0),
classified by the bundled classifier reference as the collapse table
does (trainer.evaluation). Both counts: the confident samples (the project's high-quality rule)
and every sample (the papers' argmax count). Beside each, an exact sampler with as many samples
(mean of 5 draws, numpy seeds 0-4). Prints a markdown table, then each source's confident rate
per digit (the share of samples whose channel shows that digit that pass the confidence rule,
averaged over channels) and each channel's digit shares counting every sample (%).

    python -m bench.stacked_kl real stacked-digits-r1-ema stacked-digits-edm
    python -m bench.stacked_kl stacked-digits-cgan runs/table/stacked-digits/cgan/seed1
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from lab.cards import newest_version, read_card
from lab.classify import classify
from lab.diagnostics.classifier import classified_modes, confidence_threshold
from lab.diagnostics.statistics import kl_divergences
from lab.sampling import file_drawer
from service.config import REPO_MODELS
from trainer.datasets import get_dataset
from trainer.evaluation import classifier_reference
from trainer.training_loop import restore

SAMPLES, SEED, EXACT_DRAWS = 26_000, 0, 5
DIGITS = 10


def kl_uniform(counts: np.ndarray) -> float:
    """KL(counts / sum || uniform) in nats over the histogram's bins, as the report computes
    its KL (lab.diagnostics.statistics.kl_divergences: empty bins add 0)."""
    return kl_divergences(counts, np.full(counts.size, 1.0 / counts.size))[0]


def split_kl(digits: np.ndarray) -> tuple[float, list[float]]:
    """(KL against the uniform stacks, each channel's marginal part KL(q_c || u)) of the
    stacks whose digits are `digits` [N, C]; the rest of the KL is TC."""
    channels = digits.shape[1]
    modes = digits @ (DIGITS ** np.arange(channels - 1, -1, -1))
    total = kl_uniform(np.bincount(modes, minlength=DIGITS**channels))
    marginals = [kl_uniform(np.bincount(digits[:, c], minlength=DIGITS)) for c in range(channels)]
    return total, marginals


def exact_split(n: int, channels: int) -> tuple[float, float]:
    """(KL, the marginals' part) of an exact sampler's n stacks, each the mean of
    EXACT_DRAWS draws."""
    draws = [
        split_kl(np.random.default_rng(seed).integers(DIGITS, size=(n, channels)))
        for seed in range(EXACT_DRAWS)
    ]
    return (
        float(np.mean([kl for kl, _ in draws])),
        float(np.mean([sum(marginals) for _, marginals in draws])),
    )


def source_images(name: str, dataset_name: str) -> np.ndarray:
    """SAMPLES images of a bundled model (its newest version), of a GAN run's checkpoint or of
    the data (`real`)."""
    if name == "real":
        dataset = get_dataset(dataset_name)
        return dataset.sample(SAMPLES, torch.Generator().manual_seed(SEED)).numpy()
    if (Path(name) / "checkpoint.pt").is_file():
        return run_images(Path(name), dataset_name)
    card = read_card(REPO_MODELS / name)
    if card is None:
        raise SystemExit(f"no bundled model {name!r} under {REPO_MODELS}")
    if card.get("dataset") != dataset_name:
        raise SystemExit(f"{name!r} was trained on {card.get('dataset')!r}, not {dataset_name!r}")
    draw = file_drawer(REPO_MODELS / name, card, newest_version(card)["version"])
    return draw(SAMPLES, SEED)


def run_images(run_dir: Path, dataset_name: str) -> np.ndarray:
    """SAMPLES images of a GAN run's checkpoint, drawn as its export would serve them."""
    state = restore(run_dir)
    if state.config.dataset != dataset_name:
        trained_on = state.config.dataset
        raise SystemExit(f"{str(run_dir)!r} was trained on {trained_on!r}, not {dataset_name!r}")
    return state.samples(SAMPLES, SEED)


def analyse(name: str, dataset_name: str) -> dict:
    """The split of both counts, the exact sampler's beside them, and the confident rate per
    digit [10], for one source."""
    reference = classifier_reference(dataset_name, REPO_MODELS)
    images = source_images(name, dataset_name)
    probabilities, _ = classify(reference.session, reference.spec, images)
    digits = probabilities.argmax(axis=-1)  # [N, C]
    _, confidence = classified_modes(probabilities)
    confident = confidence >= confidence_threshold(reference.spec)
    channels = digits.shape[1]
    rate = [
        float(np.mean([confident[digits[:, c] == d].mean() for c in range(channels)]))
        for d in range(DIGITS)
    ]
    return {
        "confident_share": float(confident.mean()),
        "confident": split_kl(digits[confident]),
        "confident_exact": exact_split(int(confident.sum()), channels),
        "every": split_kl(digits),
        "every_exact": exact_split(len(digits), channels),
        "rate": rate,
        "shares": [
            np.bincount(digits[:, c], minlength=DIGITS) / len(digits) for c in range(channels)
        ],
    }


def source_arguments(doc: str) -> argparse.Namespace:
    """The command line of a stacked-digits bench: its sources (bundled model names, GAN run
    folders or `real`, as source_images takes them) and --dataset."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "sources", nargs="+", help="bundled model names, GAN run folders, or `real`"
    )
    parser.add_argument("--dataset", default="stacked-digits")
    return parser.parse_args()


def main() -> None:
    args = source_arguments(__doc__)
    results = {name: analyse(name, args.dataset) for name in args.sources}
    print(
        "| source | count | share % | KL | marginals' part | per channel | TC "
        "| exact sampler: KL | marginals' part |\n|---|---|---|---|---|---|---|---|---|"
    )
    for name, r in results.items():
        for count, share in (("confident", r["confident_share"]), ("every", 1.0)):
            (kl, marginals), (exact, exact_marginal) = r[count], r[f"{count}_exact"]
            channels = " / ".join(f"{value:.4f}" for value in marginals)
            print(
                f"| {name} | {count} | {100 * share:.1f} | {kl:.4f} | {sum(marginals):.4f} "
                f"| {channels} | {kl - sum(marginals):.4f} | {exact:.4f} | {exact_marginal:.4f} |"
            )
    header = " | ".join(str(d) for d in range(DIGITS))
    print(f"\n| source | {header} |\n|---|" + "---|" * DIGITS)
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{100 * v:.0f}" for v in r["rate"]) + " |")
    print(f"\n| source | channel | {header} |\n|---|---|" + "---|" * DIGITS)
    for name, r in results.items():
        for channel, shares in enumerate(r["shares"]):
            cells = " | ".join(f"{100 * v:.1f}" for v in shares)
            print(f"| {name} | {channel} | {cells} |")


if __name__ == "__main__":
    main()
