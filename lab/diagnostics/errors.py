"""The one error type of the diagnostics core."""


class DiagnosticsError(ValueError):
    """Samples or a reference that cannot be diagnosed; the message says why, for a human.

    The service maps it to HTTP 422 (well-formed but unusable).
    """
