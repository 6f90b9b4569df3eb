"""The markdown table of an ensemble card and its members' cards: each one's measured
diagnostics (the cards' `diagnostics`, 2,500 samples of seed 0 for the 2-D mixtures), then the
ensemble's `why`. Reads cards only; nothing is drawn. Usage:

    python -m bench.ensemble_table models/ring8-gan-ensemble
"""

import argparse
from pathlib import Path

from lab.cards import newest_version, read_card

COLUMNS = (
    "model",
    "weight",
    "modes covered",
    "covered",
    "starved",
    "high quality",
    "KL",
    "verdict",
)


def row(name: str, weight: str, diagnostics: dict) -> str:
    """One table row from a card's diagnostics."""
    modes = diagnostics["modes"]
    covered = [k for k, count in enumerate(modes["histogram"]) if count]
    kl = "n/a" if diagnostics["kl"] is None else f"{diagnostics['kl']:.3f}"
    cells = (
        f"`{name}`",
        weight,
        f"{modes['covered']} of {modes['total']}",
        ", ".join(map(str, covered)) or "none",
        ", ".join(map(str, modes["starved"])) or "none",
        f"{diagnostics['high_quality_fraction']:.1%}",
        kl,
        diagnostics["verdict"]["status"],
    )
    return "| " + " | ".join(cells) + " |"


def table(ensemble_dir: Path) -> str:
    """The members' rows (their own cards), the ensemble's row, and its `why` sentences."""
    card = read_card(ensemble_dir)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for member in newest_version(card)["members"]:
        member_card = read_card(ensemble_dir.parent / member["model"])
        lines.append(row(member["model"], f"{member['weight']:g}", member_card["diagnostics"]))
    lines.append(row(card["name"], "", card["diagnostics"]))
    why = card["diagnostics"]["ensemble"]["why"]
    return "\n".join(
        lines + ["", "Why (the report's `ensemble.why`):", ""] + [f"- {s}" for s in why]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ensemble_dir", type=Path, help="models/<name> of an ensemble card")
    print(table(parser.parse_args().ensemble_dir))


if __name__ == "__main__":
    main()
