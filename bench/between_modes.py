"""Where a 2-D model's off-mode samples lie: on the paths between neighbouring modes (what a
VAE's smooth decoder of a gap-free prior has to produce) or elsewhere. For bundled models of one
mixture, drawn as the service draws them (their card's default request, seed 0, 2,500
samples), the table gives the high-quality share (the papers' 3-std rule), the share *between
modes* (off-mode samples within `band` of a segment joining two neighbouring centres: centres
at the mixture's smallest centre distance) and the share elsewhere. Usage:

    python -m bench.between_modes ring8 ring8-vae ring8-gan ring8-wgan-gp ring8-edm
"""

import argparse

import numpy as np

from lab.cards import newest_version, read_card
from lab.sampling import file_drawer
from service.config import REPO_MODELS

SAMPLES, SEED = 2500, 0
BAND = 0.1  # the band around a segment, as a fraction of the neighbours' distance


def neighbour_segments(centres: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(a, b) for every pair of centres at the smallest centre distance (ring8: the 8 arcs'
    chords; grid25: the 40 horizontal and vertical grid edges)."""
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    nearest = distances[np.triu_indices(len(centres), 1)].min()
    pairs = zip(*np.nonzero(np.triu(np.isclose(distances, nearest), 1)), strict=True)
    return [(centres[i], centres[j]) for i, j in pairs]


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point [n, 2] to the segment from a to b: [n]."""
    t = np.clip((points - a) @ (b - a) / ((b - a) @ (b - a)), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)


def shares(samples: np.ndarray, reference: dict) -> dict[str, float]:
    """high_quality, between (off-mode, within BAND x the neighbours' distance of a neighbour
    segment) and elsewhere: fractions of the samples, summing to 1."""
    centres = np.asarray(reference["centres"], dtype=np.float64)
    points = samples.astype(np.float64)
    nearest = np.linalg.norm(points[:, None] - centres[None], axis=2).min(axis=1)
    high_quality = nearest <= 3.0 * reference["std"]
    segments = neighbour_segments(centres)
    spacing = np.linalg.norm(segments[0][1] - segments[0][0])
    to_path = np.min([segment_distance(points, a, b) for a, b in segments], axis=0)
    between = ~high_quality & (to_path <= BAND * spacing)
    return {
        "high_quality": float(high_quality.mean()),
        "between": float(between.mean()),
        "elsewhere": float((~high_quality & ~between).mean()),
    }


def table(reference_name: str, models: list[str]) -> str:
    """The markdown table of the models' shares against the reference's mixture."""
    reference = read_card(REPO_MODELS / reference_name)["reference"]
    lines = [
        "| model | kind | high quality | between neighbouring modes | elsewhere |",
        "|---|---|---|---|---|",
    ]
    for name in models:
        card = read_card(REPO_MODELS / name)
        draw = file_drawer(REPO_MODELS / name, card, newest_version(card)["version"])
        found = shares(draw(SAMPLES, SEED), reference)
        cells = [f"{100 * found[key]:.1f}%" for key in ("high_quality", "between", "elsewhere")]
        lines.append(f"| `{name}` | {card['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", help="a gaussian_mixture reference of models/ (ring8, grid25)")
    parser.add_argument("models", nargs="+", help="bundled models sampling that mixture")
    args = parser.parse_args()
    print(table(args.reference, args.models))


if __name__ == "__main__":
    main()
