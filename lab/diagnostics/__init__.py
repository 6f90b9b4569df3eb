"""Pure-numpy mode-collapse diagnostics (no Flask, no torch): see docs/diagnostics.md.

diagnose(samples, reference, reference_name) -> report dict is the entry point; the service
and the trainer both call it, so a number means the same thing everywhere.
"""

from .errors import DiagnosticsError
from .mixture import GaussianMixture
from .report import diagnose, diagnose_modes

__all__ = ["DiagnosticsError", "GaussianMixture", "diagnose", "diagnose_modes"]
