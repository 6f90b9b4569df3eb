"""GAN training configuration: the defaults live once, in `TrainConfig`.

Resolution (defaults < preset < flags) and the preset files are shared with the other model
families (trainer.settings).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from trainer.conditioning import check_class_split
from trainer.datasets import DATASETS, IMAGE_DATASETS
from trainer.losses import LOSSES
from trainer.mitigations import PACK_MODES, check_mitigations
from trainer.nets import ARCHITECTURES
from trainer.nets.conditional import PROJECTION_INITS
from trainer.settings import check_ranges, check_same_recipe, resolve_fields

IMAGE_ARCHITECTURES = ("dcgan",)  # the others take points [batch, dim]
MAXOUT_ARCHITECTURES = ("pacgan-mlp",)  # D of maxout units: their pieces are `maxout_pieces`
LR_SCHEDULES = ("constant", "linear")
# Fields that may change between a run and its resumption (how long and how often, not what).
RESUMABLE_FIELDS = ("steps", "log_every", "eval_every", "snapshot_every", "eval_samples")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Sizes in units, lr per Adam step."""

    kind: ClassVar[str] = "gan"  # the model family (not a field: GAN presets predate it)
    dataset: str = "ring8"  # registered dataset name (trainer.datasets.DATASETS)
    arch: str = "mlp"  # registered architecture (trainer.nets.ARCHITECTURES)
    loss: str = "non-saturating"  # registered loss (trainer.losses.LOSSES)
    latent_dim: int = 2
    g_hidden: int = 400  # PacGAN/VEEGAN 2-D setup: G 4 x 400 ReLU
    g_depth: int = 4
    d_hidden: int = 200  # D 3 x 200 LeakyReLU(0.2)
    d_depth: int = 3
    maxout_pieces: int = 5  # "pacgan-mlp": pieces of each of D's maxout units (PacGAN: 5)
    conv_width: int = 64  # "dcgan": channels of G's and D's 8x8 layers (4x4 layers: twice)
    # "dcgan": D's own channels at 8x8 when > 0, 0: conv_width (the weak-discriminator setting of
    # Metz et al. 2017 and PacGAN's Table 3 gives D 1/4 or 1/2 of G's width)
    d_conv_width: int = 0
    batch_size: int = 100
    steps: int = 10_000  # generator updates (d_steps D updates each)
    d_steps: int = 1  # D (critic) updates per G update; WGAN-GP's n_critic = 5
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_schedule: str = "constant"  # or "linear": both lrs decay linearly to 0 at `steps`
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    log_every: int = 100  # steps between metrics.jsonl lines
    eval_every: int = 1000  # steps between diagnostics, and at the end (0: never)
    snapshot_every: int = 1000  # steps between checkpoints, and at the end (0: only there)
    eval_samples: int = 2500  # the papers' protocol: 2,500 samples per evaluation
    gp_lambda: float = 0.1  # "wgan-gp" penalty weight: 0.1 on the 2-D mixtures (10 on images)
    # Collapse mitigations by registered name (trainer.mitigations), and their parameters.
    mitigations: tuple[str, ...] = ()
    unroll_steps: int = 5  # "unrolled": K differentiable D steps (Metz et al. 2017: 5-10)
    pack: int = 2  # "pack": m samples per D input (Lin et al. 2018: m = 2..4)
    # "pack": "in-batch" joins m samples of one batch (batch_size / m packed D inputs a step);
    # "batches" joins m independent batches, as the PacGAN code does (batch_size packed inputs).
    pack_mode: str = "in-batch"
    mbd_kernels: int = 5  # "minibatch-discrimination": B kernels (paper, images: 100)
    mbd_kernel_dim: int = 3  # ... of C dims each (paper, images: 5)
    instance_noise_std: float = 0.1  # "instance-noise": start std, annealed linearly to 0
    r1_gamma: float = 10.0  # "r1": gamma (Mescheder et al. 2018 use 10 throughout)
    fourier_features: int = 64  # "fourier-features": random projections (sin and cos of each)
    fourier_max_frequency: float = 256.0  # ... at 1 to this many radians per data unit
    mmd_weight: float = 1.0  # "mmd": weight of MMD^2 in G's loss
    # "mmd": multiplies the kernel bandwidths (trainer.mitigations.MMD_BANDWIDTHS, 0.005-5.12 data
    # units, made for the 2-D mixtures); images need their own distances' scale
    mmd_bandwidth_scale: float = 1.0
    g_ema_decay: float = 0.999  # "g-ema": weight of the old average per G step (Karras 2018)
    # Class-conditional G and D (trainer/nets/conditional.py): K classes splitting the dataset's
    # modes in order (lab.conditioning.class_modes), 0 for an unconditional GAN.
    classes: int = 0
    class_embed_dim: int = 16  # width of G's label embedding, joined to z
    # init of D's class embedding (trainer.nets.conditional.PROJECTION_INITS): "normal" (N(0, 1),
    # nn.Embedding's) or "glorot" (Glorot uniform, the projection paper's code)
    projection_init: str = "normal"
    # A pool file of the dataset's points with per-point weights (trainer/datasets/weighted.py,
    # written by `trainer boost`: AdaGAN's reweighted data); "": draw from the dataset itself.
    data_weights: str = ""

    def __post_init__(self) -> None:
        # JSON gives a list; keep the field a hashable tuple (the dataclass is frozen).
        if isinstance(self.mitigations, list):
            object.__setattr__(self, "mitigations", tuple(self.mitigations))
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what config.json and the card's `training` hold)."""
        fields = dataclasses.asdict(self)
        fields["mitigations"] = list(self.mitigations)  # equal to its JSON round trip
        return fields

    def check_resumable(self, saved: dict[str, Any]) -> None:
        """ValueError if a checkpoint's config `saved` is another recipe than this one."""
        resumable = set(RESUMABLE_FIELDS)
        if "instance-noise" in self.mitigations or self.lr_schedule != "constant":
            resumable.discard("steps")  # annealed over `steps`: a new length, a new schedule
        check_same_recipe(with_defaults(saved), self.to_dict(), resumable)


def check_config(config: TrainConfig) -> None:
    """Validate names and ranges; ValueError with a readable message otherwise."""
    for field, registry in (("dataset", DATASETS), ("arch", ARCHITECTURES), ("loss", LOSSES)):
        value = getattr(config, field)
        if value not in registry:
            raise ValueError(
                f"unknown {field} {value!r}; choose from {', '.join(registry.names())}"
            )
    image_data = config.dataset in IMAGE_DATASETS
    if image_data != (config.arch in IMAGE_ARCHITECTURES):
        wanted = "dcgan" if image_data else "mlp"
        raise ValueError(
            f"arch {config.arch!r} does not fit the {'image' if image_data else 'point'} "
            f"dataset {config.dataset!r}; use arch {wanted!r}"
        )
    at_least_one = ("latent_dim", "g_hidden", "g_depth", "d_hidden", "d_depth", "conv_width")
    at_least_one += ("batch_size", "maxout_pieces", "log_every", "eval_samples", "d_steps")
    at_least_one += ("pack", "mbd_kernels", "mbd_kernel_dim", "class_embed_dim", "fourier_features")
    check_ranges(
        config,
        at_least_one=at_least_one,
        non_negative=("steps", "seed", "eval_every", "snapshot_every", "unroll_steps", "classes")
        + ("d_conv_width",),
        positive=("lr_g", "lr_d", "fourier_max_frequency", "mmd_bandwidth_scale"),
    )
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"unknown lr_schedule {config.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}"
        )
    if config.pack_mode not in PACK_MODES:
        raise ValueError(
            f"unknown pack_mode {config.pack_mode!r}; choose from {', '.join(PACK_MODES)}"
        )
    check_ranges(
        config,
        below_one=("beta1", "beta2", "g_ema_decay"),
        non_negative=("gp_lambda", "instance_noise_std", "r1_gamma", "mmd_weight"),
    )
    if not (
        isinstance(config.mitigations, tuple)
        and all(isinstance(name, str) for name in config.mitigations)
    ):
        raise ValueError(f"mitigations must be a list of names, got {config.mitigations!r}")
    check_mitigations(config)
    if config.d_conv_width and config.arch not in IMAGE_ARCHITECTURES:
        raise ValueError(
            f"d_conv_width sets the 'dcgan' D's channels; arch {config.arch!r} has d_hidden"
        )
    if config.projection_init not in PROJECTION_INITS:
        raise ValueError(
            f"unknown projection_init {config.projection_init!r}; choose from "
            f"{', '.join(PROJECTION_INITS)}"
        )
    if config.classes:
        check_classes(config)
    elif config.projection_init != "normal":
        raise ValueError(
            "projection_init initialises a class-conditional D's class embedding; "
            "set classes > 0, or leave projection_init 'normal'"
        )
    if config.data_weights and config.classes:
        raise ValueError("data_weights reweights points, not classes: use classes 0 with it")


def check_classes(config: TrainConfig) -> None:
    """ValueError unless a conditional config's classes split the dataset's modes evenly and
    no mitigation joins several samples (and so several labels) into one D input."""
    check_class_split(config.dataset, config.classes, "GAN")
    joined = [name for name in ("pack", "unrolled") if name in config.mitigations]
    if joined:
        raise ValueError(
            f"mitigation(s) {', '.join(joined)} are not combined with classes (packing joins "
            "several labels into one D input; unrolling re-runs D without them)"
        )


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A config dict written by an older version, completed with the defaults of fields added
    since (a field's default keeps the old behaviour, so the recipe is the same)."""
    return TrainConfig().to_dict() | saved


def resolve_config(
    preset: str | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < preset < overrides (None values in overrides are skipped)."""
    return TrainConfig(**resolve_fields(TrainConfig, preset, overrides))
