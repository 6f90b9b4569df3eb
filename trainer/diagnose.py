"""Measure an exported model's card diagnostics again, from its own ONNX files.

The diagnostics in a card are measured at export (trainer.export.export_diagnostics for a
GAN, trainer.edm.export.export_diagnostics for a score model): the service's report on the
papers' number of samples drawn as the service draws them for each exporter's seed (0 for a
GAN, 1 for a score model, with the card's default steps and sampler). When the report gains
keys or a rule changes, `python -m trainer diagnose models/<name>` measures the newest version
again the same way, without its checkpoint, and rewrites the card's `diagnostics`.
"""

from pathlib import Path

from lab.cards import read_card, write_card
from trainer.export import export_diagnostics


def rediagnose(model_dir: Path) -> Path:
    """Measure the card's diagnostics again on the newest version in model_dir (references
    from model_dir's parent repository) and write the card; the card's path.

    ValueError when model_dir holds no gan or score card.
    """
    from trainer.edm.export import export_diagnostics as score_diagnostics

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    kind = card and card.get("kind")
    if kind not in ("gan", "score"):
        raise ValueError(f"{model_dir} holds no gan or score card")
    newest = max(card["versions"], key=lambda version: version["version"])
    if kind == "gan":
        path = model_dir / newest["file"]
        diagnostics = export_diagnostics(
            path, card["latent_dim"], card["dataset"], model_dir.parent
        )
    else:
        diagnostics = score_diagnostics(card, model_dir, newest, model_dir.parent)
    card["diagnostics"] = diagnostics
    return write_card(model_dir, card)
