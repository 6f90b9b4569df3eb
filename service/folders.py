"""Folders that appear and disappear whole, for the stores every worker shares (uploaded
references, jobs): a folder is written under a staging name and renamed into place, and removed
by renaming it away before deleting it, so a reader on any worker sees all of it or nothing.
Leftover `.staging-*` and `.deleting-*` names are the stores' to skip when they list."""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(root: Path, final: Path) -> Iterator[Path]:
    """A new empty folder under `root` to write into, renamed to `final` when the block ends
    without error (atomic; an OSError when `final` exists). On any error or interruption it is
    removed and the error goes on: nothing half-written is left behind."""
    staging = root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        yield staging
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_folder(root: Path, folder: Path) -> bool:
    """Delete `folder` (under `root`) by renaming it away first; False when it is not there
    (another worker may have been faster)."""
    doomed = root / f".deleting-{uuid.uuid4().hex}"
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True
