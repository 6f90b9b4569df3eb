"""The model repository: `<root>/<name>/card.json` + `<root>/<name>/<version>/model.onnx`.

Loaded in each gunicorn worker after the fork. Every folder becomes an entry; a card that
fails its schema, a missing or altered ONNX file, or a session that will not load makes that
entry not ready, with the reason, and never stops the others from serving.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lab import runtime
from lab.cards import (
    SERVABLE_KINDS,
    check_signature,
    check_tensors,
    checked_file,
    load_classifier_reference,
    tensor_inputs,
    validate_card,
)
from lab.samplers import SAMPLERS
from lab.sampling import ScoreSpec, stepped_score_samples

log = logging.getLogger(__name__)
WARM_UP_ROWS = 1  # rows of the run each session gets before its entry is ready (warm_up)
FUSED_INPUT, FUSED_OUTPUT = "noise", "samples"  # a fused trajectory graph's tensors


@dataclass
class Entry:
    """One folder of the repository: its card, readiness and sessions (generators: one per
    version; classifier references: version 1 is the classifier), and a classifier
    reference's real-sample features (float64 [N, D])."""

    name: str
    path: Path
    card: dict | None = None
    error: str | None = None
    sessions: dict[int, ort.InferenceSession] = field(default_factory=dict)
    features: np.ndarray | None = None
    fused: dict[int, ort.InferenceSession] = field(default_factory=dict)  # score: per version
    half: set[int] = field(default_factory=set)  # gan: versions served by their fp16 graph
    # score: per version, the step graphs' sessions by sampler ("euler", "heun")
    steppers: dict[int, dict[str, ort.InferenceSession]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.error is None and self.card is not None

    @property
    def kind(self) -> str | None:
        return self.card.get("kind") if isinstance(self.card, dict) else None

    @property
    def provider(self) -> str | None:
        """The execution provider really in use (None for entries without sessions)."""
        session = next(iter(self.sessions.values()), None)
        return runtime.session_provider(session) if session else None

    def latest_version(self) -> int:
        return max(self.sessions)


class Repository:
    """All entries of one model repository folder, keyed by name."""

    def __init__(self, root: Path, device: str, fp16: str = "auto") -> None:
        self.root = root
        self.device = device
        self.fp16 = fp16  # FP16 (service/config.py): auto | on | off
        self.entries: dict[str, Entry] = {}

    def load(self) -> "Repository":
        """Read every folder; then check that each generator's reference is ready."""
        if not self.root.is_dir():
            log.error("model repository %s is not a folder", self.root)
            return self
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not folder.name.startswith("."):
                self.entries[folder.name] = self._load_entry(folder)
        for entry in self.entries.values():
            if entry.ready and entry.kind in SERVABLE_KINDS:
                self._check_reference(entry)
        for entry in self.entries.values():
            log.info("model %s: %s", entry.name, "ready" if entry.ready else entry.error)
        return self

    def _load_entry(self, folder: Path) -> Entry:
        entry = Entry(name=folder.name, path=folder)
        try:
            entry.card = json.loads((folder / "card.json").read_text())
            validate_card(entry.card)
            if entry.card["name"] != folder.name:
                raise ValueError(f"card name {entry.card['name']!r} != folder {folder.name!r}")
            if entry.kind in SERVABLE_KINDS:
                entry.sessions = self._load_sessions(entry)
                entry.fused = self._load_fused(entry)
                entry.steppers = self._load_steppers(entry)
            elif entry.kind == "reference" and entry.card["reference"]["type"] == "classifier":
                self._load_classifier(entry)
            elif entry.kind not in ("reference",):
                raise ValueError(f"kind {entry.kind!r} is not served by this version")
        except FileNotFoundError as error:
            entry.error = f"missing file: {Path(error.filename).relative_to(self.root)}"
        except (ValueError, OSError, runtime.RuntimeUnavailable) as error:
            entry.error = str(error)
        except Exception as error:  # onnxruntime raises its own types for broken files
            entry.error = f"cannot load ONNX: {type(error).__name__}: {error}"
        return entry

    def _load_classifier(self, entry: Entry) -> None:
        """The classifier session (checked against the card) and the reference features."""
        loaded = load_classifier_reference(entry.path, self.device, entry.card)
        entry.sessions = {1: loaded.session}
        warm_up(loaded.session, [loaded.spec["input"]], loaded.spec["file"])
        entry.features = loaded.features

    def _checked_session(
        self, folder: Path, spec: dict, large_graph: bool = False
    ) -> ort.InferenceSession:
        """A session of the file a card entry names, checked against its sha256."""
        return runtime.create_session(checked_file(folder, spec), self.device, large_graph)

    def _load_sessions(self, entry: Entry) -> dict[int, ort.InferenceSession]:
        sessions = {}
        for version in entry.card["versions"]:
            session = self._checked_session(entry.path, version)
            if self._runs_half(version, session):
                spec = version["fp16"]
                session = self._checked_session(entry.path, spec)
                entry.half.add(version["version"])
            check_signature(session, entry.card)
            warm_up(session, tensor_inputs(entry.card), version["file"])
            sessions[version["version"]] = session
        return sessions

    def _runs_half(self, version: dict, session: ort.InferenceSession) -> bool:
        """Whether a version runs its float16 graph: listed, and FP16 on, or auto on CUDA."""
        if "fp16" not in version or self.fp16 == "off":
            return False
        return self.fp16 == "on" or runtime.session_provider(session) == runtime.CUDA

    def _load_fused(self, entry: Entry) -> dict[int, ort.InferenceSession]:
        """The fused trajectory sessions of a score model's versions that list one."""
        sessions = {}
        for version in entry.card["versions"]:
            if "fused" in version:
                spec = version["fused"]
                session = self._checked_session(entry.path, spec, large_graph=True)
                noise = {**entry.card["input"], "name": FUSED_INPUT}
                check_tensors(session, [noise], {**entry.card["output"], "name": FUSED_OUTPUT})
                warm_up(session, [noise], spec["file"])
                sessions[version["version"]] = session
        return sessions

    def _load_steppers(self, entry: Entry) -> dict[int, dict[str, ort.InferenceSession]]:
        """The step graph sessions of a score model's versions that list them, each pair
        warmed up by a 2-step Heun trajectory of one sample (both graphs, the device loop)."""
        steppers = {}
        for version in entry.card["versions"]:
            if "step_graphs" in version:
                graphs = version["step_graphs"]
                sessions = {s: self._checked_session(entry.path, graphs[s]) for s in SAMPLERS}
                try:
                    stepped_score_samples(
                        sessions, ScoreSpec.from_card(entry.card), 1, 0, 2, "heun"
                    )
                except Exception as error:  # InferenceFailed, or a graph of the wrong tensors
                    raise ValueError(
                        f"{graphs['heun']['file']}: the warm-up run failed: {error}"
                    ) from None
                steppers[version["version"]] = sessions
        return steppers

    def _check_reference(self, entry: Entry) -> None:
        reference = self.entries.get(entry.card["reference"])
        if reference is None or reference.kind != "reference":
            entry.error = f"reference {entry.card['reference']!r} not in the repository"
        elif not reference.ready:
            entry.error = f"reference {reference.name!r} not ready: {reference.error}"

    def get(self, name: str, kind: str | None = None) -> Entry | None:
        entry = self.entries.get(name)
        if entry is None or (kind is not None and entry.kind != kind):
            return None
        return entry

    def of_kind(self, *kinds: str) -> list[Entry]:
        return [entry for entry in self.entries.values() if entry.kind in kinds]

    def not_ready(self) -> dict[str, str]:
        return {e.name: e.error or "not loaded" for e in self.entries.values() if not e.ready}


def warm_up(session: ort.InferenceSession, inputs: list[dict], file: str) -> None:
    """One run on WARM_UP_ROWS rows of ones for the tensor specs `inputs`, before the entry
    counts as ready: onnxruntime (on CUDA: cuDNN, the kernels) initialises on a session's first
    run, and a model that loads but cannot run is found here, not by a request. ValueError
    naming `file` when the run fails."""
    feeds = {
        spec["name"]: np.ones([WARM_UP_ROWS, *spec["shape"][1:]], dtype=spec["dtype"])
        for spec in inputs
    }
    try:
        session.run(None, feeds)
    except Exception as error:  # onnxruntime's own exception types
        raise ValueError(
            f"{file}: the warm-up run failed: {type(error).__name__}: {error}"
        ) from None
