"""The model repository: `<root>/<name>/card.json` + `<root>/<name>/<version>/model.onnx`.

Loaded in each gunicorn worker after the fork. Every folder becomes an entry; a card that
fails its schema, a missing or altered ONNX file, or a session that will not load makes that
entry not ready, with the reason, and never stops the others from serving.
"""

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lab import runtime
from lab.cards import (
    ENSEMBLE,
    FEATURE_KINDS,
    GENERATOR_KINDS,
    SERVABLE_KINDS,
    check_member,
    check_model,
    check_signature,
    check_tensors,
    checked_file,
    classifier_spec,
    load_features,
    tensor_inputs,
    validate_card,
)
from lab.conditioning import conditional_input
from lab.diagnostics import GaussianMixture
from lab.samplers import SAMPLERS
from lab.sampling import (
    FUSED_INPUT,
    FUSED_OUTPUT,
    GRAPH_LABELS,
    ScoreGraphs,
    ScoreSpec,
    stepped_score_samples,
)

log = logging.getLogger(__name__)
WARM_UP_ROWS = 1  # rows of the run each session gets before its entry is ready (warm_up)


@dataclass(frozen=True)
class Member:
    """One member of an ensemble's version: the member's entry, the version drawn, its weight."""

    entry: "Entry"
    version: "Version"
    weight: float


@dataclass(frozen=True)
class Version:
    """One loaded version of a gan, score, ensemble, classifier or embedding model.

    number: its version number; card: its entry of the card's "versions".
    session: the model's graph, a gan's G(z), a score model's denoiser D(x, sigma) (the
        float16 graph when precision is "fp16": FP16, _runs_half, else the float32 one), a
        classifier's images -> scores (and embedding), an embedding's images -> features.
    fused: a score model's fused trajectory graph, when the version lists one.
    steppers: a score model's step graphs by sampler ("euler", "heun"), when it lists them.
    members: an ensemble's members, in card order (it has no session of its own).
    """

    number: int
    card: dict
    session: ort.InferenceSession | None
    precision: str = "fp32"  # "fp32" | "fp16"
    fused: ort.InferenceSession | None = None
    steppers: dict[str, ort.InferenceSession] | None = None
    members: tuple[Member, ...] = ()

    def score_graphs(self) -> ScoreGraphs:
        """This version's sessions as lab.sampling.score_drawer takes them."""
        return ScoreGraphs(self.card, self.session, self.fused, self.steppers)


@dataclass
class Entry:
    """One folder of the repository: its card and readiness; a gan, score, classifier or
    embedding model's versions by number; a classifier reference's spec (lab.cards.
    classifier_spec: the card's `reference` with its classifier's tensors), the session of the
    classifier version it names, and its real-sample features (float64 [N, D])."""

    name: str
    path: Path
    card: dict | None = None
    error: str | None = None
    versions: dict[int, Version] = field(default_factory=dict)
    classifier: ort.InferenceSession | None = None
    features: np.ndarray | None = None
    spec: dict | None = None

    @property
    def ready(self) -> bool:
        return self.error is None and self.card is not None

    @property
    def kind(self) -> str | None:
        return self.card.get("kind") if isinstance(self.card, dict) else None

    @property
    def provider(self) -> str | None:
        """The execution provider really in use (an ensemble's: its first member's; None for
        entries without sessions)."""
        first = next(iter(self.versions.values()), None)
        if first is not None and first.members:
            return first.members[0].entry.provider
        session = first.session if first is not None else self.classifier
        return runtime.session_provider(session) if session else None

    def latest_version(self) -> int:
        return max(self.versions)

    def version(self, number: int | None = None) -> Version:
        """Version `number`, the newest when None (KeyError when absent)."""
        return self.versions[self.latest_version() if number is None else number]


class Repository:
    """All entries of one model repository folder, keyed by name."""

    def __init__(self, root: Path, device: str, fp16: str = "auto") -> None:
        self.root = root
        self.device = device
        self.fp16 = fp16  # FP16 (service/config.py): auto | on | off
        self.entries: dict[str, Entry] = {}

    def load(self) -> "Repository":
        """Read every folder; then link each classifier reference to its classifier, and check
        that each generator's reference is ready."""
        if not self.root.is_dir():
            log.error("model repository %s is not a folder", self.root)
            return self
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not folder.name.startswith("."):
                self.entries[folder.name] = self._load_entry(folder)
        for entry in self.entries.values():
            if entry.ready and entry.kind == "reference" and entry.features is not None:
                self._link_classifier(entry)
        for entry in self.entries.values():
            if entry.ready and entry.kind in SERVABLE_KINDS:
                self._check_reference(entry)
        for entry in self.entries.values():
            if entry.ready and entry.kind == ENSEMBLE:
                self._link_members(entry)
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
            if entry.kind in GENERATOR_KINDS:
                # The model graphs first, all versions: /v1/models lists them (versions,
                # precision, provider) even when a sampler graph below fails to load.
                entry.versions = self._load_versions(entry)
                entry.versions = {
                    number: self._with_sampler_graphs(entry, version)
                    for number, version in entry.versions.items()
                }
            elif entry.kind in FEATURE_KINDS:
                entry.versions = self._load_model_versions(entry)
            elif entry.kind == "reference" and entry.card["reference"]["type"] == "classifier":
                entry.features = load_features(folder, entry.card["reference"]["features"])
            elif entry.kind == "reference":  # a mixture: checked now for what the schema
                GaussianMixture.from_spec(entry.card["reference"])  # cannot (shapes, noise_dims)
            elif entry.kind not in ("reference", ENSEMBLE):  # ensembles: _link_members
                raise ValueError(f"kind {entry.kind!r} is not served by this version")
        except FileNotFoundError as error:
            entry.error = f"missing file: {Path(error.filename).relative_to(self.root)}"
        except (ValueError, OSError, runtime.RuntimeUnavailable) as error:
            entry.error = str(error)
        except Exception as error:  # onnxruntime raises its own types for broken files
            entry.error = f"cannot load ONNX: {type(error).__name__}: {error}"
        return entry

    def _load_model_versions(self, entry: Entry) -> dict[int, Version]:
        """A classifier or embedding model's versions, each checked against the card (input,
        outputs: names, dtypes, shapes) and warmed up."""
        versions = {}
        for spec in entry.card["versions"]:
            session = self._checked_session(entry.path, spec)
            try:
                check_model(session, entry.card)
            except ValueError as error:
                raise ValueError(f"{spec['file']} does not match card.json: {error}") from None
            warm_up(session, [entry.card["input"]], spec["file"])
            versions[spec["version"]] = Version(spec["version"], spec, session)
        return versions

    def _link_classifier(self, entry: Entry) -> None:
        """A classifier reference's classifier session and spec, from the classifier entry it
        names; the reference is not ready, with the reason, when that entry is missing, not
        ready, lacks the version or disagrees with the reference (classifier_spec)."""
        reference = entry.card["reference"]
        name, number = reference["classifier"], reference.get("classifier_version")
        classifier = self.entries.get(name)
        if classifier is None or classifier.kind != "classifier":
            entry.error = f"classifier {name!r} not in the repository"
        elif not classifier.ready:
            entry.error = f"classifier {name!r} not ready: {classifier.error}"
        elif number is not None and number not in classifier.versions:
            entry.error = f"classifier {name!r} has no version {number}"
        else:
            try:
                entry.spec = classifier_spec(reference, classifier.card, entry.features.shape[1])
            except ValueError as error:
                entry.error = f"does not fit classifier {name!r}: {error}"
                return
            entry.classifier = classifier.version(number).session

    def _link_members(self, entry: Entry) -> None:
        """An ensemble's versions, each with its members' loaded versions; the ensemble is not
        ready, with the reason, when a member is missing, not ready, lacks the version or is
        incompatible (lab.cards.check_member: kind, dataset, reference, sample shape, value
        range)."""
        versions = {}
        for spec in entry.card["versions"]:
            try:
                members = tuple(self._member(entry, member) for member in spec["members"])
            except ValueError as error:
                entry.error = f"version {spec['version']}: {error}"
                return
            versions[spec["version"]] = Version(spec["version"], spec, None, members=members)
        entry.versions = versions

    def _member(self, entry: Entry, spec: dict) -> Member:
        """The loaded member an ensemble version's `members` item names; ValueError why not."""
        name, number = spec["model"], spec["version"]
        member = self.entries.get(name)
        if member is None:
            raise ValueError(f"member {name!r} not in the repository")
        if not member.ready:
            raise ValueError(f"member {name!r} not ready: {member.error}")
        check_member(entry.card, member.card)
        if number not in member.versions:
            raise ValueError(f"member {name!r} has no version {number}")
        return Member(member, member.versions[number], spec["weight"])

    def _checked_session(
        self, folder: Path, spec: dict, large_graph: bool = False
    ) -> ort.InferenceSession:
        """A session of the file a card entry names, checked against its sha256."""
        return runtime.create_session(checked_file(folder, spec), self.device, large_graph)

    def _load_versions(self, entry: Entry) -> dict[int, Version]:
        """Each version's model graph (its float16 one when _runs_half), checked against the
        card and warmed up."""
        versions = {}
        for spec in entry.card["versions"]:
            session, precision = self._checked_session(entry.path, spec), "fp32"
            if self._runs_half(spec, session):
                session, precision = self._checked_session(entry.path, spec["fp16"]), "fp16"
            check_signature(session, entry.card)
            warm_up(session, tensor_inputs(entry.card), spec["file"])
            versions[spec["version"]] = Version(spec["version"], spec, session, precision)
        return versions

    def _runs_half(self, version: dict, session: ort.InferenceSession) -> bool:
        """Whether a version runs its float16 graph: listed, and FP16 on, or auto on CUDA."""
        if "fp16" not in version or self.fp16 == "off":
            return False
        return self.fp16 == "on" or runtime.session_provider(session) == runtime.CUDA

    def _with_sampler_graphs(self, entry: Entry, version: Version) -> Version:
        """`version` with the fused trajectory graph and step graphs its card entry lists."""
        fused = self._load_fused(entry, version.card)
        return replace(version, fused=fused, steppers=self._load_steppers(entry, version.card))

    def _load_fused(self, entry: Entry, version: dict) -> ort.InferenceSession | None:
        """The fused trajectory session of a score model's version, when it lists one."""
        if "fused" not in version:
            return None
        spec = version["fused"]
        session = self._checked_session(entry.path, spec, large_graph=True)
        inputs = [{**entry.card["input"], "name": FUSED_INPUT}, *graph_labels(entry.card)]
        check_tensors(session, inputs, {**entry.card["output"], "name": FUSED_OUTPUT})
        warm_up(session, inputs, spec["file"])
        return session

    def _load_steppers(self, entry: Entry, version: dict) -> dict[str, ort.InferenceSession] | None:
        """The step graph sessions of a score model's version, when it lists them, the pair
        warmed up by a 2-step Heun trajectory of one sample (both graphs, the device loop; a
        conditional model's for class 0)."""
        if "step_graphs" not in version:
            return None
        graphs = version["step_graphs"]
        sessions = {s: self._checked_session(entry.path, graphs[s]) for s in SAMPLERS}
        labels = np.zeros(1, np.int64) if graph_labels(entry.card) else None
        try:
            spec = ScoreSpec.from_card(entry.card)
            stepped_score_samples(sessions, spec, 1, 0, 2, "heun", labels=labels)
        except Exception as error:  # InferenceFailed, or a graph of the wrong tensors
            raise ValueError(f"{graphs['heun']['file']}: the warm-up run failed: {error}") from None
        return sessions

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


def graph_labels(card: dict) -> list[dict]:
    """The labels input spec of a conditional score card's fused and step graphs (GRAPH_LABELS
    [batch] int64); [] for an unconditional card."""
    label_input = conditional_input(card)
    return [] if label_input is None else [{**label_input, "name": GRAPH_LABELS}]


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
