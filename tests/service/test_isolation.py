"""The service never imports torch or the trainer."""

import subprocess
import sys


def test_service_imports_neither_torch_nor_trainer():
    code = (
        "import sys, service.app, lab.diagnostics; "
        "bad = [m for m in ('torch', 'trainer') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
