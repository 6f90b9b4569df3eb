"""Export a VAE's decoder to the model repository with a `vae` card: served like a GAN's G(z).

The ONNX file is the decoder alone, z [batch, latent_dim] -> samples (the decoder's mean: what
VAEs are sampled by in practice, and what the papers' figures show), with the GAN's export
steps (trainer.export.export_generator: parity on the service's latents, the float16 graph
where parity allows, diagnostics on the service's seed-0 samples). The card adds a `vae`
object: beta, the decoder's learned scale sigma_x (samples are means; sigma_x says how much
noise p(x|z) adds around them) and the active latent dimensions measured at export.
"""

from pathlib import Path
from typing import Any

from trainer.export import export_generator
from trainer.vae.training_loop import ACTIVE_THRESHOLD, VAEState, latent_health, load_run

DECODER_OUTPUT = "mean"  # what the exported graph returns of p(x|z)


def vae_section(state: VAEState) -> dict[str, Any]:
    """The card's `vae` object: beta, decoder_output, decoder_std, active_dims (of latent_dim,
    with the threshold) and the negative ELBO on eval_samples fresh data points."""
    health = latent_health(state)
    return {
        "beta": state.config.beta,
        "decoder_output": DECODER_OUTPUT,
        "decoder_std": health["decoder_std"],
        "active_dims": health["active_dims"],
        "active_threshold": ACTIVE_THRESHOLD,
        "latent_variances": health["latent_variances"],
        "negative_elbo": health["negative_elbo"],
    }


def export_vae(
    run_dir: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    description: str | None = None,
) -> Path:
    """Export run_dir's decoder as models_dir/<name>/<version>/model.onnx (and its float16 graph
    where parity allows); the card's path.

    version defaults to the previous largest + 1; older versions stay listed in the card.
    ValueError for bad requests (invalid name, existing version, a non-vae card of that name);
    RuntimeError when parity fails (nothing is left behind).
    """
    state = load_run(Path(run_dir))
    meta = {"architecture": state.architecture, "config": state.config.to_dict()}
    text = description or default_description(state)
    extra = {"vae": vae_section(state)}
    decoder = state.vae.decoder.eval()
    return export_generator(decoder, meta, models_dir, name, version, text, "vae", extra)


def default_description(state: VAEState) -> str:
    """A one-line description from the training config."""
    config = state.config
    return (
        f"VAE ({config.arch}, beta {config.beta:g}, latent_dim {config.latent_dim}) trained on "
        f"{config.dataset} for {state.step} steps, seed {config.seed}; serves the decoder's mean."
    )
