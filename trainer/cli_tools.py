"""What every subcommand of `python -m trainer` shares: its parser carrying its handler, usage
errors instead of tracebacks, and argparse types."""

import argparse
from collections.abc import Callable
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_command(
    commands: argparse._SubParsersAction, name: str, help: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    """A subcommand whose parsed arguments carry its handler and its own parser (for usage
    errors)."""
    command = commands.add_parser(name, help=help)
    command.set_defaults(handler=handler, parser=command)
    return command


def or_usage_error(args: argparse.Namespace, function: Callable[..., Any], *arguments: Any) -> Any:
    """function(*arguments); a ValueError (a bad request: a bad name, another recipe, a card
    of another kind) becomes a usage error (exit status 2, its message, no traceback)."""
    try:
        return function(*arguments)
    except ValueError as error:
        args.parser.error(str(error))


def value_range(text: str) -> tuple[float, float]:
    """argparse type: "LOW,HIGH", two numbers with LOW < HIGH."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH numbers, got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW < HIGH, got {text!r}")
    return low, high
