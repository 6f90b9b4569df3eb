"""`python -m trainer boost`: AdaGAN, an ensemble whose members are trained one after another,
each on the data reweighted towards what the members before it miss.

Tolstikhin et al. 2017, "AdaGAN: Boosting Generative Models" (NeurIPS), Algorithm 1, with the
choices of the authors' 2-D runs (tolstikhin/adagan, adagan_gmm.py): a fixed pool of training
points; member 1 trains on the data itself; before member t > 1,

1. a classifier D separates the pool's points (real) from samples of the mixture so far
   (fake), and gives each pool point x_i the density ratio h_i = dP_model / dP_data (x_i)
   ~ (1 - D(x_i)) / D(x_i) = exp(-logit(x_i));
2. the new member's weight is beta_t = 1 / t ("uniform": the mixture ends with equal weights);
3. the pool's weights are eq. (17)'s theory-star solution ("theory_star" in their code): w_i =
   (lambda - (1 - beta) h_i)_+ / (N beta), with lambda making them sum to 1 (eq. 18): points
   the mixture already covers (h large) get none, the ones it misses (h ~ 0) share the rest;
4. member t, the same recipe with another seed, trains on the pool drawn by those weights
   (the TrainConfig field `data_weights`, trainer/datasets/weighted.py);
5. the mixture's weights become (1 - beta) times the old ones, and beta for member t.

After each member, boost.json records the member alone and the mixture so far on the papers'
protocol (eval_samples samples of seed 0, drawn as the service draws an ensemble).

Each member is an ordinary run (its own run directory, evaluated against the dataset's true
reference), exported as a gan model; the ensemble card (trainer/ensemble.py) mixes them by the
final weights, so the service draws and diagnoses the boosted mixture like any ensemble.

Outputs in out_dir: member<t>/ (runs), weights<t>.npz (the pool and member t's weights) and
boost.json (the members, their betas, seeds, weights and what each pool reweighting left).
"""

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lab.ensembles import ensemble_drawer
from lab.sampling import Draw
from trainer.config import TrainConfig
from trainer.datasets import get_dataset
from trainer.datasets.weighted import write_pool
from trainer.ensemble import MemberChoice, write_ensemble
from trainer.evaluation import diagnose_samples
from trainer.export import export_gan, load_generator
from trainer.runs import train
from trainer.training_loop import build, generate

POOL_SIZE = 100_000  # the pool of training points (the authors' 2-D runs: 256,000)
CLASSIFIER_STEPS = 5_000  # Adam steps of the real-vs-mixture classifier
CLASSIFIER_BATCH = 256
CLASSIFIER_WIDTH = 200
LOGIT_LIMIT = 30.0  # |logit| clipped before exp: h stays finite and > 0


def next_beta(t: int) -> float:
    """The weight of member t (1-based) when it joins: 1 / t (AdaGAN's "uniform" heuristic)."""
    return 1.0 / t


def mixture_after(weights: Sequence[float], beta: float) -> list[float]:
    """The mixture weights once a member of weight beta joins those of `weights`."""
    return [w * (1.0 - beta) for w in weights] + [beta] if weights else [1.0]


def theory_star_weights(ratios: np.ndarray, beta: float) -> np.ndarray:
    """AdaGAN's eq. (17)-(18): w_i = (lambda - (1 - beta) h_i)_+ / (N beta), float64 [N]
    summing to 1, from the density ratios h_i = dP_model / dP_data (x_i) >= 0, float [N], and
    the new member's weight beta in (0, 1).

    lambda solves sum_i (lambda - (1 - beta) h_i)_+ = N beta: with the ratios sorted, keeping
    the i smallest gives lambda_i = (N beta + (1 - beta) (h_(1) + ... + h_(i))) / i, the one
    with (1 - beta) h_(i) <= lambda_i <= (1 - beta) h_(i+1) (or i = N). Such an i exists for
    any ratios (the sum is continuous and increasing in lambda)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    n = ratios.size
    if n == 0 or not 0 < beta < 1 or ratios.min() < 0 or not np.all(np.isfinite(ratios)):
        raise ValueError("theory_star_weights needs finite ratios >= 0 and 0 < beta < 1")
    ordered = np.sort(ratios) * (1.0 - beta)
    lambdas = (n * beta + np.cumsum(ordered)) / np.arange(1, n + 1)
    above = np.append(ordered[1:], np.inf)
    # the first i whose lambda_i lies in its interval; rounding can leave every interval
    # missed by an ulp (ties), so the least violation decides
    kept = int(np.argmin(np.maximum(np.maximum(ordered - lambdas, lambdas - above), 0.0)))
    weights = np.maximum(lambdas[kept] - (1.0 - beta) * ratios, 0.0) / (n * beta)
    return weights / weights.sum()


def classifier(dim: int) -> nn.Module:
    """D of the reweighting: an MLP (3 x CLASSIFIER_WIDTH LeakyReLU) giving a logit."""
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = dim
    for _ in range(3):
        layers += [nn.Linear(width_in, CLASSIFIER_WIDTH), nn.LeakyReLU(0.2)]
        width_in = CLASSIFIER_WIDTH
    return nn.Sequential(*layers, nn.Linear(width_in, 1))


def density_ratios(
    pool: torch.Tensor, fake: torch.Tensor, seed: int, steps: int = CLASSIFIER_STEPS
) -> np.ndarray:
    """h_i ~ dP_model / dP_data at each pool point, float64 [P]: exp(-logit) of a classifier
    trained (seeded, BCE, Adam 1e-3, balanced batches) on the pool (real) against the
    mixture's samples fake (same shape)."""
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = classifier(int(np.prod(pool.shape[1:])))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    targets = torch.cat([torch.ones(CLASSIFIER_BATCH), torch.zeros(CLASSIFIER_BATCH)])
    for _ in range(steps):
        real = pool[torch.randint(len(pool), (CLASSIFIER_BATCH,), generator=rng)]
        drawn = fake[torch.randint(len(fake), (CLASSIFIER_BATCH,), generator=rng)]
        logits = net(torch.cat([real, drawn])).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = torch.cat([net(part).squeeze(1) for part in pool.split(10_000)])
    return torch.exp(-logits.double().clamp(-LOGIT_LIMIT, LOGIT_LIMIT)).numpy()


def member_draw(run_dir: Path) -> Draw:
    """A trained member as a lab.sampling Draw: its generator on the seed's latents, as the
    service draws a gan member (loaded once, then drawn from as often as needed)."""
    generator, meta = load_generator(run_dir)
    latent_dim = meta["config"]["latent_dim"]
    return lambda n, seed, progress=None: generate(generator, n, latent_dim, seed)


def boost(
    config: TrainConfig,
    members: int,
    out_dir: Path,
    pool_size: int = POOL_SIZE,
    classifier_steps: int = CLASSIFIER_STEPS,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `members` members of config's recipe by AdaGAN (module docstring) into out_dir:
    member t (0-based) with seed config.seed + t. Finished members and pool files are reused,
    so an interrupted boost resumes. Returns boost.json's content."""
    if members < 1 or pool_size < 2 or config.classes or config.data_weights:
        raise ValueError(
            "boost needs members >= 1, a pool of >= 2 points and an unconditional "
            "recipe without data_weights"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = get_dataset(config.dataset)
    pool = dataset.sample(pool_size, torch.Generator().manual_seed(config.seed))
    draws: list[Draw] = []  # the members trained so far
    weights: list[float] = []
    summary = {
        "method": "AdaGAN (Tolstikhin et al. 2017): beta 1/t, theory-star weights",
        "recipe": config.to_dict(),
        "pool_size": pool_size,
        "classifier_steps": classifier_steps,
        "weights": weights,
        "members": [],
    }
    for t in range(members):
        beta = next_beta(t + 1)
        entry: dict[str, Any] = {"member": t, "seed": config.seed + t, "beta": beta}
        data_weights = ""
        if t > 0:
            path = out_dir / f"weights{t}.npz"
            if not path.is_file():
                fake = ensemble_drawer(draws, weights)(pool_size, t)
                ratios = density_ratios(pool, torch.from_numpy(fake), t, classifier_steps)
                write_pool(path, pool.numpy(), theory_star_weights(ratios, beta))
            entry |= pool_summary(np.load(path)["weights"])
            data_weights = str(path)
        member_config = replace(config, seed=config.seed + t, data_weights=data_weights)
        run_dir = out_dir / f"member{t}"
        train(build, member_config, run_dir, progress=progress)
        draws.append(member_draw(run_dir))
        weights = mixture_after(weights, beta)
        n = config.eval_samples  # the member alone, then the mixture so far (the seed rule)
        entry["alone"] = mode_numbers(ensemble_drawer(draws[-1:], [1.0])(n, 0), config)
        entry["mixture"] = mode_numbers(ensemble_drawer(draws, weights)(n, 0), config)
        summary["weights"] = weights
        summary["members"].append(entry | {"run_dir": str(run_dir)})
        # after each member, so that a long boost can be followed (and its record survives)
        (out_dir / "boost.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def mode_numbers(samples: np.ndarray, config: TrainConfig) -> dict[str, Any]:
    """The mode counts of samples against config's dataset (the papers' protocol): the modes
    with a high-quality sample (and which), the high-quality share, KL and the verdict."""
    report = diagnose_samples(samples, config.dataset, modes_only=True)
    modes = report["modes"]
    return {
        "modes_covered": modes["covered"],
        "histogram": modes["histogram"],
        "high_quality_fraction": report["high_quality_fraction"],
        "kl": report["kl"],
        "verdict": report["verdict"]["status"],
    }


def pool_summary(weights: np.ndarray) -> dict[str, float]:
    """What a reweighting left of the pool: the share of points with no weight, and the
    effective number of points (1 / sum w^2) over the pool size."""
    return {
        "pool_dropped": float(np.mean(weights == 0)),
        "pool_effective": float(1.0 / np.sum(weights**2) / weights.size),
    }


def export_boosted(summary: dict[str, Any], models_dir: Path, name: str) -> Path:
    """Export each member as models_dir/<name>-m<t> and write the ensemble <name> mixing them
    by the final weights (rounded so that they sum to 1); the ensemble card's path."""
    choices = []
    weights = [round(w, 9) for w in summary["weights"]]
    weights[-1] = round(1.0 - math.fsum(weights[:-1]), 9)
    for member, weight in zip(summary["members"], weights, strict=True):
        member_name = f"{name}-m{member['member']}"
        text = (
            f"AdaGAN member {member['member']} of {name} (seed {member['seed']}, "
            f"beta {member['beta']:.4g}): {summary['recipe']['dataset']}, trained on "
            + (
                "the data"
                if member["member"] == 0
                else "the pool reweighted by the members before it"
            )
        )
        export_gan(Path(member["run_dir"]), models_dir, member_name, description=text)
        choices.append(MemberChoice(member_name, None, weight))
    description = (
        f"AdaGAN ensemble of {len(choices)} {summary['recipe']['dataset']} GANs, each trained "
        "on the data reweighted towards the modes the members before it miss."
    )
    return write_ensemble(models_dir, name, choices, description)
