"""References built from uploads, stored under `<DATA_DIR>/references/<name>/`.

Each is a card (kind "reference", reference type "features", or "classifier" when a classifier
model embedded it) and `features.npy`, the reference batch's features (float64 [N, D]); a card
names the classifier or embedding model (and its version) that embedded the batch, so a
diagnosis embeds its batch the same way. A features reference whose modes were discovered
(lab/diagnostics/clusters.py) also holds `centres.npy` (float64 [K, D]) and `exemplars.npy`
(float64 [K, E, *sample_shape]: the reference rows nearest each centre, in sample space, for
figures), described by the card's `reference.modes` object. `passes.npz` holds the reference's own
passes of the report (its k-NN sweep and NDB's K-means: lab.diagnostics.features.stored_passes),
computed once when the reference is stored, so that no report against it computes them
(about 4.6 s at 50,000 x 64); a reference stored without it (N^2 D above PASSES_MAX_WORK, or
stored before it existed) still diagnoses, computing them in each worker's first report.
Every gunicorn worker reads the same folder, so a reference created through one worker is seen
by all. Writes are atomic: a
reference is built in a staging folder and renamed into place, and deleted by renaming it
away first (service/folders.py), so a reader never sees half a reference. Built-in references
(the model repository) are read-only.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lab.cards import NAME
from lab.diagnostics import DiagnosticsError
from lab.diagnostics.classifier import classified_histogram
from lab.diagnostics.clusters import ClusterModes, discover_modes, largest_modes, modes_from_card
from lab.diagnostics.embedding import embed, image_layout
from lab.diagnostics.features import keep_stored_passes
from lab.diagnostics.report import validate_samples
from service.errors import ApiError
from service.folders import remove_folder, staged_folder

LOG = logging.getLogger(__name__)
CARD_BYTES = 4096  # room counted for a stored reference's card.json and .npy header


MODES_AUTO, MODES_NONE = "auto", "none"
CENTRES_FILE, EXEMPLARS_FILE = "centres.npy", "exemplars.npy"
PASSES_FILE = "passes.npz"  # the reference's own k-NN sweep and K-means (features.stored_passes)
# The largest N^2 D whose passes are computed when a reference is stored: 4x the 50,000 x 64
# of docs/performance.md (4.6 s there, about 18 s at this size on 2 idle cores), well inside
# REQUEST_DEADLINE; a larger reference is stored without them (its reports compute them).
PASSES_MAX_WORK = 4 * 50_000**2 * 64


@dataclass(frozen=True)
class StoredReference:
    card: dict
    features: np.ndarray  # float64 [N, D], read-only
    modes: ClusterModes | None = None  # discovered modes (features references)
    exemplars: np.ndarray | None = None  # float64 [K, E, *sample_shape], read-only


@dataclass(frozen=True)
class DiscoveredModes:
    """What creating a reference adds for its discovered modes: the card's `modes` object,
    the modes, and the exemplar rows in sample space float64 [K, E, *sample_shape]."""

    card: dict
    modes: ClusterModes
    exemplars: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.modes.centres.nbytes + self.exemplars.nbytes + len(json.dumps(self.card))


def with_modes(
    spec: dict, features: np.ndarray, requested: int | str, samples: np.ndarray | None = None
) -> DiscoveredModes | None:
    """Discover the modes of a features reference (spec: features_spec's, features float64
    [N, D]) and record them in spec["modes"] (None, with spec["modes_note"] saying why, when
    modes=none was asked or "auto" has too few rows). requested: "auto", "none" or K.
    samples: the batch in sample space [N, *sample_shape] for the exemplars; by default the
    features themselves (the raw and pixels embeddings are the samples, flattened)."""
    if requested == MODES_NONE:
        spec.update(modes=None, modes_note="not discovered: modes=none was asked")
        return None
    if requested == MODES_AUTO and largest_modes(features.shape[0]) < 2:
        spec.update(
            modes=None,
            modes_note=f"not discovered: {features.shape[0]} rows are too few to cluster; "
            "upload more rows for mode counts",
        )
        return None
    modes, card = discover_modes(features, None if requested == MODES_AUTO else int(requested))
    rows = np.maximum(modes.exemplar_rows, 0)  # -1 pads: row 0, never listed (exemplars_of)
    source = features if samples is None else samples
    exemplars = np.asarray(source[rows.ravel()], dtype=np.float64)
    exemplars = exemplars.reshape(*rows.shape, *spec["sample_shape"])
    spec["modes"] = {**card, "files": {"centres": CENTRES_FILE, "exemplars": EXEMPLARS_FILE}}
    return DiscoveredModes(spec["modes"], modes, exemplars)


def features_spec(batch: np.ndarray, source: str | None) -> tuple[dict, np.ndarray]:
    """The card's `reference` object and the features of a reference batch [N, ...]."""
    if batch.ndim == 2:
        embedding, sample_shape = "raw", [batch.shape[1]]
    else:
        embedding, sample_shape = "pixels", list(image_layout(batch))
    features = validate_samples(
        embed(batch, embedding, tuple(sample_shape)), int(np.prod(sample_shape))
    )
    spec = {
        "type": "features",
        "embedding": embedding,
        "sample_shape": sample_shape,
        "n": int(features.shape[0]),
        "feature_dim": int(features.shape[1]),
        "source": source or "upload",
    }
    return spec, features


def classified_spec(
    batch_size: int,
    source: str | None,
    classifier_spec: dict,
    probabilities: np.ndarray,
    embeddings: np.ndarray,
) -> tuple[dict, np.ndarray]:
    """The `reference` object and features of an image batch classified by a classifier model
    (classifier_spec: lab.cards.classifier_spec of a reference naming it, with `channels`
    groups): its modes' weights are the batch's own confident-class histogram, so a diagnosis
    can name missing classes; features are the classifier's features [N, G * E]."""
    histogram = classified_histogram(probabilities, classifier_spec)
    classifier = classifier_spec["classifier"]
    if histogram.sum() == 0:
        raise DiagnosticsError(
            f"no image of the batch is classified confidently by "
            f"{classifier!r}; is it in the classifier's value range?"
        )
    spec = {
        "type": "classifier",
        "classifier": classifier,
        "classifier_version": classifier_spec["classifier_version"],
        "embedding": "classifier",
        **{key: classifier_spec[key] for key in ("channels", "n_modes")},
        "weights": (histogram / histogram.sum()).tolist(),
        "n": batch_size,
        "feature_dim": int(embeddings.shape[1]),
        "source": source or "upload",
    }
    return spec, np.asarray(embeddings, dtype=np.float64)


def embedded_spec(
    source: str | None, model: str, version: int, model_card: dict, features: np.ndarray
) -> tuple[dict, np.ndarray]:
    """The `reference` object and validated features float64 [N, D] of an image batch embedded
    by version `version` of the embedding model `model` (its card `model_card`)."""
    features = validate_samples(features, model_card["feature_dim"])
    spec = {
        "type": "features",
        "embedding": "model",
        "embedding_model": model,
        "embedding_version": version,
        "sample_shape": model_card["input"]["shape"][1:],
        "n": int(features.shape[0]),
        "feature_dim": int(features.shape[1]),
        "source": source or "upload",
    }
    return spec, features


def read_array(path: Path) -> np.ndarray:
    """A stored .npy file, never unpickled, read-only."""
    array = np.load(path, allow_pickle=False)
    array.setflags(write=False)
    return array


def passes_worth_storing(features: np.ndarray) -> bool:
    """Whether storing a reference of these features (float64 [N, D]) computes its passes:
    N^2 D within PASSES_MAX_WORK."""
    n, d = features.shape
    return n * n * d <= PASSES_MAX_WORK


def read_passes(folder: Path, features: np.ndarray) -> None:
    """Keep the stored passes of a reference's features for the reports (REFERENCE_PASSES),
    when its folder has them and they fit; they are only a shortcut, so a missing or unusable
    file is logged and the reports compute them instead."""
    path = folder / PASSES_FILE
    if not path.is_file():
        return
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        LOG.warning(
            "reference %s: %s unreadable (%s); computing its passes", folder.name, path.name, error
        )
        return
    if not keep_stored_passes(features, arrays):
        LOG.warning(
            "reference %s: %s does not fit its features; computing its passes",
            folder.name,
            path.name,
        )


def read_reference(folder: Path) -> StoredReference:
    """A stored reference's card and arrays (its discovered modes when the card has them);
    its stored passes are kept for the reports (read_passes)."""
    card = json.loads((folder / "card.json").read_text())
    features = read_array(folder / "features.npy")
    read_passes(folder, features)
    spec = card["reference"].get("modes")
    if not spec:
        return StoredReference(card, features)
    modes = modes_from_card(spec, read_array(folder / CENTRES_FILE))
    return StoredReference(card, features, modes, read_array(folder / EXEMPLARS_FILE))


class ReferenceStore:
    """Uploaded references on disk: list, get, create, delete; at most max_count of them,
    holding at most max_bytes together."""

    def __init__(self, root: Path, max_count: int, max_bytes: int) -> None:
        self.root = root / "references"
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._cache: dict[str, tuple[float, StoredReference]] = {}

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and NAME.fullmatch(p.name) and (p / "card.json").is_file()
        )

    def get(self, name: str) -> StoredReference | None:
        """The stored reference, re-read when another worker replaced it (mtime changed)."""
        folder = self.root / name
        if not NAME.fullmatch(name) or not (folder / "card.json").is_file():
            return None
        try:
            stamp = (folder / "card.json").stat().st_mtime_ns
            cached = self._cache.get(name)
            if cached is None or cached[0] != stamp:
                self._cache[name] = (stamp, read_reference(folder))
        except (OSError, ValueError):  # deleted meanwhile by another worker
            return None
        return self._cache[name][1]

    def stored_bytes(self) -> int:
        """Bytes of every file under the stored references (staging folders included)."""
        if not self.root.is_dir():
            return 0
        return sum(path.stat().st_size for path in self.root.rglob("*") if path.is_file())

    def check_room(self, features: np.ndarray, extra_bytes: int = 0) -> None:
        """409 when MAX_REFERENCES are stored, or the features (and extra_bytes of discovered
        modes) would take the references past MAX_REFERENCE_BYTES."""
        if len(self.names()) >= self.max_count:
            raise ApiError(
                409,
                f"{self.max_count} uploaded references already stored "
                "(MAX_REFERENCES); delete one first",
                "too-many-references",
            )
        stored, needed = self.stored_bytes(), features.nbytes + CARD_BYTES + extra_bytes
        if stored + needed > self.max_bytes:
            raise ApiError(
                409,
                f"this reference needs {needed / 1e6:.1f} MB and the stored ones hold "
                f"{stored / 1e6:.1f} MB of {self.max_bytes / 1e6:.1f} MB (MAX_REFERENCE_BYTES); "
                "delete one first, or upload fewer rows",
                "too-many-references",
            )

    def create(
        self,
        name: str,
        spec: dict,
        features: np.ndarray,
        modes: DiscoveredModes | None = None,
        passes: dict[str, np.ndarray] | None = None,
    ) -> dict:
        """Store a reference (its card's `reference` object, features float64 [N, D], its
        discovered modes and its passes (stored_passes), if any); 409 if the name exists or
        when full (check_room). All files are written in a staging folder renamed into place: a
        failure or an interruption midway leaves nothing behind."""
        extra = (modes.nbytes if modes else 0) + sum(a.nbytes for a in (passes or {}).values())
        self.check_room(features, extra)
        card = {
            "schema_version": 1,
            "name": name,
            "kind": "reference",
            "description": f"uploaded reference of {spec['n']} samples",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": "upload",
            "reference": spec,
        }
        try:
            with staged_folder(self.root, self.root / name) as staging:
                np.save(staging / "features.npy", features, allow_pickle=False)
                if modes is not None:
                    np.save(staging / CENTRES_FILE, modes.modes.centres, allow_pickle=False)
                    np.save(staging / EXEMPLARS_FILE, modes.exemplars, allow_pickle=False)
                if passes:
                    np.savez(staging / PASSES_FILE, **passes)
                (staging / "card.json").write_text(json.dumps(card, indent=2))
        except OSError:
            if (self.root / name).exists():  # the rename found the name taken
                raise ApiError(
                    409,
                    f"a reference named {name!r} exists; delete it first or choose another name",
                    "conflict",
                ) from None
            raise
        return card

    def delete(self, name: str) -> bool:
        """Remove a stored reference; False when there is none of that name."""
        folder = self.root / name
        if not NAME.fullmatch(name) or not folder.is_dir():
            return False
        if not remove_folder(self.root, folder):
            return False
        self._cache.pop(name, None)
        return True
