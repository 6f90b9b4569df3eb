"""The client's command line: the verdict of a batch file, samples to a file, the models.

    python -m client diagnose batch.npy --reference ring8 [--json]
    python -m client samples ring8-gan -n 2500 --seed 1 -o samples.npy
    python -m client models

--url (default $COLLAPSE_LAB_URL, else http://localhost:8000) and --api-key (default
$API_KEY). Exit status: 0 done, 1 the service refused the call (its problem printed), 2 usage.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from client.api import Client, ClientError

DEFAULT_URL = "http://localhost:8000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("COLLAPSE_LAB_URL", DEFAULT_URL))
    parser.add_argument("--api-key", default=os.environ.get("API_KEY") or None)
    commands = parser.add_subparsers(dest="command", required=True)
    diagnose = commands.add_parser("diagnose", help="diagnose a batch file; print the verdict")
    diagnose.add_argument("batch", type=Path, help=".npy, .npz, .csv, .json, .png or .zip")
    diagnose.add_argument("--reference", help="a reference name (GET /v1/references)")
    diagnose.add_argument("--json", action="store_true", help="print the whole report as JSON")
    samples = commands.add_parser("samples", help="draw samples; write them as .npy")
    samples.add_argument("model")
    samples.add_argument("-n", type=int, required=True, help="how many samples")
    samples.add_argument("--seed", type=int, help="the same seed gives the same samples")
    samples.add_argument("-o", "--output", type=Path, required=True, help="the .npy to write")
    commands.add_parser("models", help="list the models: name, kind, ready, provider")
    return parser


def summary(report: dict[str, Any]) -> str:
    """The verdict, its reasons and the mode counts, as lines a person reads."""
    verdict = report["verdict"]
    lines = [f"verdict: {verdict['status']}"] + [f"  - {reason}" for reason in verdict["reasons"]]
    modes = report.get("modes")
    if modes:
        lines.append(f"modes: {modes['covered']} of {modes['total']} covered")
        if modes["missing"]:
            lines.append(f"missing modes: {', '.join(map(str, modes['missing']))}")
    return "\n".join(lines)


def run(args: argparse.Namespace, api: Client) -> str:
    """What the command prints."""
    if args.command == "diagnose":
        report = api.diagnose(args.batch, args.reference)
        return json.dumps(report, indent=2) if args.json else summary(report)
    if args.command == "samples":
        drawn = api.samples(args.model, args.n, args.seed)
        np.save(args.output, drawn.array, allow_pickle=False)
        return f"{args.output}: {drawn.array.shape} from version {drawn.version}, seed {drawn.seed}"
    rows = [(m["name"], m["kind"], str(m["ready"]), str(m["provider"])) for m in api.models()]
    return "\n".join(" ".join(row) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "batch", None) is not None and not args.batch.is_file():
        parser.error(f"no file {args.batch}")
    try:
        print(run(args, Client(args.url, args.api_key)))
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # connection refused, timeouts
        print(f"error: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
