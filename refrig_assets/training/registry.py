"""MLflow model registry: register detectors with lineage, resolve the version to score with.

Each detector is a registered model named by its ``model_id``. A version carries lineage tags
(training partitions, training-data hash, config hash, code version, Dagster run id, feature
schema) and a semantic version: MAJOR when the feature schema changes, MINOR on retraining with
new data, PATCH on a config-only change. The production model is the ``production`` alias; a
version pinned in the detector's ``models/`` file overrides it.

Every version also carries the sha256 of each file of its detector artifact
(``artifact_sha256``); :meth:`ModelRegistry.load` verifies it before unpickling, so a truncated
or replaced artifact is refused as a :class:`CorruptArtifactError` that names
``model@version`` and the file. A training run whose fingerprint (code version, config hash,
training-data hash, feature schema) matches a registered version reuses that version instead of
registering an identical one (:meth:`ModelRegistry.version_with_fingerprint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from refrig_assets.core.settings import git_commit  # noqa: E402
from refrig_assets.detectors.base import Detector  # noqa: E402

PRODUCTION_ALIAS = "production"
EXPERIMENT = "refrig-detectors"
# The MLflow UI opens an experiment in its classic ML view (runs, metrics, models) with this
# tag; without it MLflow 3 may show the GenAI view (traces, prompts).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"
SIGNATURE_EXAMPLE_ROWS = 50
ARTIFACT_SHA256_TAG = "artifact_sha256"
# What makes two trainings the same model: equal values of these lineage tags.
FINGERPRINT_TAGS = (
    "code_version",
    "config_hash",
    "training_data_hash",
    "feature_schema",
)
DETECTOR_FILE = "detector.joblib"


class RegistryError(RuntimeError):
    """The registry has no usable version for a detector."""


class CorruptArtifactError(RegistryError):
    """A registered version whose artifact does not match its recorded sha256, is missing, or
    cannot be loaded."""

    def __init__(self, model_id: str, version: str, path: Path | str, problem: str):
        self.model_id = model_id
        self.version = str(version)
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{model_id}@{version}: artifact {path} {problem}")


def artifact_checksums(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, keyed by its path relative to it."""
    directory = Path(directory)
    sums = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sums[path.relative_to(directory).as_posix()] = digest.hexdigest()
    return sums


class DetectorPyfunc(mlflow.pyfunc.PythonModel):
    """Lets MLflow serve a detector (``predict`` = calibrated scores); the project loads the
    detector object itself for contributors."""

    def load_context(self, context):
        self.detector = Detector.load(Path(context.artifacts["detector"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.detector.score(model_input)


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from."""

    training_partitions: str
    training_data_hash: str
    config_hash: str
    feature_schema: str
    code_version: str
    run_id: str
    training_rows: int

    def tags(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def _detector_location(download_uri: str) -> str:
    """The detector folder under a version's artifact URI (a local path for ``file://``)."""
    base = (
        download_uri.removeprefix("file://") if download_uri.startswith("file://") else download_uri
    )
    return f"{base}/artifacts/detector"


def logged_model_id(version) -> str | None:
    """The MLflow 3 logged model behind a registry version (where its metrics live); the
    version's ``model_id`` is not filled by every store, its ``models:/<id>`` source is."""
    if getattr(version, "model_id", None):
        return str(version.model_id)
    source = str(version.source or "")
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def _dataset_and_signature(detector: Detector, lineage: Lineage, features: pd.DataFrame):
    """The training frame as an ``mlflow.data`` dataset and the model's signature (inferred
    from a few of its rows and their scores)."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    example = features.head(SIGNATURE_EXAMPLE_ROWS)
    dataset = from_pandas(
        features,
        source=f"device_features/{lineage.training_partitions}",
        name=f"device_features {lineage.training_partitions}",
        digest=lineage.training_data_hash,
    )
    return dataset, infer_signature(example, detector.score(example))


def _version_description(
    detector: Detector, lineage: Lineage, semver: str, metrics: dict[str, float]
) -> str:
    """What the version page says first: what was trained on what, and how it flagged it."""
    rate = metrics.get("training_flag_rate")
    flagged = f"; flagged {rate:.1%} of its training windows" if rate is not None else ""
    notes = "".join(f" Note: {n}." for n in getattr(detector, "notes", ()))
    return (
        f"{detector.config.model_id} {semver} ({detector.config.detector}): trained on feature "
        f"hours {lineage.training_partitions}, {lineage.training_rows:,} windows{flagged}. "
        f"Code {lineage.code_version}, config {lineage.config_hash[:12]}. Canary and backtest "
        f"metrics are added when it is evaluated against production.{notes}"
    )


@cache
def code_version() -> str:
    """Git commit of the project when available, plus a hash of the detector sources."""
    src = Path(__file__).resolve().parents[1] / "detectors"
    digest = hashlib.sha256()
    for p in sorted(src.glob("*.py")):
        digest.update(p.read_bytes())
    sha = git_commit()
    return f"{sha or 'nogit'}+{digest.hexdigest()[:10]}"


class ModelRegistry:
    """Thin wrapper over MLflow's registry with the project's conventions."""

    def __init__(self, tracking_uri: str, artifacts_dir: Path):
        self.tracking_uri = tracking_uri
        self.artifacts_dir = Path(artifacts_dir)
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._loaded: dict[tuple[str, str], Detector] = {}

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        if exp is None:
            return self.client.create_experiment(
                EXPERIMENT,
                artifact_location=self.artifacts_dir.resolve().as_uri(),
                tags={EXPERIMENT_KIND_TAG: CLASSIC_ML},
            )
        if exp.tags.get(EXPERIMENT_KIND_TAG) != CLASSIC_ML:
            self.client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML)
        self._follow_moved_home(exp)
        return exp.experiment_id

    def _follow_moved_home(self, exp) -> None:
        """After the home was moved or copied, new versions go under this home's artifact root,
        not under the old path recorded in the experiment (SQLite registries: the registry and
        its artifacts travel together). Earlier versions are found by :meth:`_rebased`."""
        here = self.artifacts_dir.resolve().as_uri()
        recorded = exp.artifact_location
        if recorded == here or not self.tracking_uri.startswith("sqlite:///"):
            return
        if recorded.startswith("file://") and Path(recorded.removeprefix("file://")).exists():
            return  # a registry that shares another home's artifacts on purpose
        import sqlalchemy as sa

        engine = sa.create_engine(self.tracking_uri)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE experiments SET artifact_location = :here WHERE experiment_id = :id"
                    ),
                    {"here": here, "id": int(exp.experiment_id)},
                )
        finally:
            engine.dispose()

    def _rebased(self, uri: str) -> str:
        """``uri`` under this home's artifact root when it points under another root that no
        longer exists (a moved or copied home); otherwise unchanged."""
        if not uri.startswith("file://") or Path(uri.removeprefix("file://")).exists():
            return uri
        marker = "/mlflow/artifacts/"
        if marker not in uri:
            return uri
        relative = uri.split(marker, 1)[1]
        moved = self.artifacts_dir.resolve() / relative
        return moved.as_uri() if moved.exists() else uri

    def latest_version_tags(self, model_id: str) -> dict[str, str] | None:
        versions = self._versions(model_id)
        return dict(versions[-1].tags) if versions else None

    def _versions(self, model_id: str):
        try:
            found = self.client.search_model_versions(f"name='{model_id}'")
        except MlflowException:
            return []
        return sorted(found, key=lambda v: int(v.version))

    def register(
        self,
        detector: Detector,
        lineage: Lineage,
        metrics: dict[str, float],
        training_features: pd.DataFrame | None = None,
    ) -> str:
        """Log the detector as an MLflow model, register it, tag lineage; returns the version.

        With ``training_features`` (the frame it was fitted on) the version also carries a
        signature (those columns in, the model_scores columns out) and the frame as its
        ``mlflow.data`` training dataset, to which the metrics are attached."""
        model_id = detector.config.model_id
        previous = self.latest_version_tags(model_id)
        semver = self._semver(previous, lineage)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        dataset, signature = None, None
        if training_features is not None:
            dataset, signature = _dataset_and_signature(detector, lineage, training_features)
        with tempfile.TemporaryDirectory() as tmp:
            detector.save(Path(tmp) / "detector")
            checksums = artifact_checksums(Path(tmp) / "detector")
            with mlflow.start_run(
                experiment_id=self._experiment_id(), run_name=f"train-{model_id}"
            ):
                mlflow.log_params(
                    {f"hp.{k}": v for k, v in detector.config.hyperparameters.items()}
                    | {"flag_threshold": detector.config.flag_threshold}
                )
                if dataset is not None:
                    mlflow.log_input(dataset, context="training")
                mlflow.set_tags(lineage.tags() | {"model_id": model_id, "semver": semver})
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=DetectorPyfunc(),
                    artifacts={"detector": str(Path(tmp) / "detector")},
                    pip_requirements=["refrig-assets"],
                    signature=signature,
                )
                # Attached to the logged model: the version page shows them.
                mlflow.log_metrics(metrics, model_id=info.model_id, dataset=dataset)
        # MLflow prints "Successfully registered ..." / "Created version ..." to stderr itself;
        # the asset's metadata and the pipeline summary say it.
        with contextlib.redirect_stderr(io.StringIO()):
            registered = mlflow.register_model(info.model_uri, model_id)
        version = str(registered.version)
        checksum_tag = json.dumps(checksums, sort_keys=True)
        for k, v in (
            lineage.tags() | {"semver": semver, ARTIFACT_SHA256_TAG: checksum_tag}
        ).items():
            self.client.set_model_version_tag(model_id, version, k, v)
        self.client.update_model_version(
            model_id,
            version,
            description=_version_description(detector, lineage, semver, metrics),
        )
        model_description = detector.config.settings.get("description")
        if model_description:
            self.client.update_registered_model(model_id, description=str(model_description))
        return version

    def log_version_metrics(self, model_id: str, version: str, metrics: dict[str, float]) -> None:
        """Add evaluation metrics (canary, backtest) to a version, comparable across versions
        in the MLflow UI; ``None`` values (not measured) are left out."""
        mv = self.client.get_model_version(model_id, str(version))
        if mv.run_id is None:
            return  # registered from outside a run: nothing to attach metrics to
        for key, value in metrics.items():
            if value is None:
                continue
            self.client.log_metric(mv.run_id, key, float(value), model_id=logged_model_id(mv))

    def version_url_path(self, model_id: str, version: str) -> str:
        """The version's page in the MLflow UI, relative to the UI's base URL."""
        return f"#/models/{model_id}/versions/{version}"

    def version_with_fingerprint(self, model_id: str, fingerprint: dict[str, str]) -> str | None:
        """The newest version trained with the same code, config, data and feature schema
        (``fingerprint``: the :data:`FINGERPRINT_TAGS` values), if any."""
        wanted = {k: str(fingerprint[k]) for k in FINGERPRINT_TAGS}
        for v in reversed(self._versions(model_id)):
            tags = dict(v.tags)
            if all(tags.get(k) == value for k, value in wanted.items()):
                return str(v.version)
        return None

    @staticmethod
    def _semver(previous: dict[str, str] | None, lineage: Lineage) -> str:
        if not previous or "semver" not in previous:
            return "1.0.0"
        major, minor, patch = (int(x) for x in previous["semver"].split("."))
        if previous.get("feature_schema") != lineage.feature_schema:
            return f"{major + 1}.0.0"
        if previous.get("training_data_hash") == lineage.training_data_hash:
            return f"{major}.{minor}.{patch + 1}"
        return f"{major}.{minor + 1}.0"

    def production_version(self, model_id: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(model_id, PRODUCTION_ALIAS).version)
        except MlflowException:
            return None

    def set_production(self, model_id: str, version: str) -> None:
        self.client.set_registered_model_alias(model_id, PRODUCTION_ALIAS, version)

    def version_tags(self, model_id: str, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(model_id, version).tags)

    def resolve_version(self, model_id: str, pinned: str | None = None) -> str:
        """The version scoring should use: the pin if set, else the production alias."""
        if pinned:
            return str(pinned)
        version = self.production_version(model_id)
        if version is None:
            raise RegistryError(
                f"{model_id}: no production version in the registry — train it first "
                f"(materialize the {model_id}_model asset)"
            )
        return version

    def recorded_checksums(self, model_id: str, version: str) -> dict[str, str] | None:
        """The artifact sha256 recorded at registration (None: registered before checksums)."""
        raw = self.version_tags(model_id, version).get(ARTIFACT_SHA256_TAG)
        return json.loads(raw) if raw else None

    def artifact_location(self, model_id: str, version: str) -> str:
        """Where the version's detector artifact lives (its folder, as a path or URI)."""
        _, uri = self._version_and_uri(model_id, version)
        return _detector_location(uri)

    def _version_and_uri(self, model_id: str, version: str):
        try:
            mv = self.client.get_model_version(model_id, str(version))
        except MlflowException as exc:
            raise RegistryError(f"{model_id} version {version} is not registered") from exc
        # The version's own artifact location: a ``models:/`` URI would be resolved against
        # the process-wide registry URI, which may be another registry's.
        return mv, self._rebased(self.client.get_model_version_download_uri(model_id, mv.version))

    def verify(self, model_id: str, version: str, expected: dict[str, str] | None = None) -> Path:
        """The local folder of a version's detector artifact after checking every file against
        ``expected`` sha256 (default: the checksums tagged at registration). A version
        registered without checksums is not checked. Raises :class:`CorruptArtifactError`
        naming ``model@version`` and the file."""
        version = str(version)
        mv, uri = self._version_and_uri(model_id, version)
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=self.tracking_uri
            )
        except (MlflowException, OSError) as exc:
            raise CorruptArtifactError(
                model_id,
                version,
                _detector_location(uri),
                f"cannot be read: {type(exc).__name__}: {exc}",
            ) from exc
        directory = Path(local) / "artifacts" / "detector"
        raw = dict(mv.tags).get(ARTIFACT_SHA256_TAG)
        recorded = expected if expected is not None else (json.loads(raw) if raw else None)
        if recorded is None:
            if not (directory / DETECTOR_FILE).is_file():
                raise CorruptArtifactError(
                    model_id, version, directory / DETECTOR_FILE, "is missing"
                )
            return directory
        actual = artifact_checksums(directory) if directory.is_dir() else {}
        for name, sha in sorted(recorded.items()):
            if name not in actual:
                raise CorruptArtifactError(model_id, version, directory / name, "is missing")
            if actual[name] != sha:
                raise CorruptArtifactError(
                    model_id,
                    version,
                    directory / name,
                    f"has sha256 {actual[name][:16]}…, not the {sha[:16]}… recorded at "
                    "registration (corrupt or replaced)",
                )
        return directory

    def check(self, model_id: str, version: str) -> None:
        """Whether a version could serve, without keeping it: its artifact is verified against
        the recorded sha256; a version registered without checksums is loaded to find out."""
        if self.recorded_checksums(model_id, str(version)) is None:
            self.load(model_id, str(version))
        else:
            self.verify(model_id, str(version))

    def load(self, model_id: str, version: str) -> Detector:
        """Load a registered detector version after verifying its artifact's sha256 (cached
        per process). A corrupt, missing or unloadable artifact raises
        :class:`CorruptArtifactError`; an unknown version :class:`RegistryError`."""
        key = (model_id, str(version))
        if key not in self._loaded:
            directory = self.verify(model_id, str(version))
            try:
                self._loaded[key] = Detector.load(directory)
            except Exception as exc:  # noqa: BLE001 - any unpickling failure means unusable
                raise CorruptArtifactError(
                    model_id,
                    str(version),
                    directory / DETECTOR_FILE,
                    f"cannot be loaded: {type(exc).__name__}: {exc}",
                ) from exc
        return self._loaded[key]

    # -- lifecycle (promotion gates, pinning, history) -----------------------------------------

    def versions(self, model_id: str) -> list[dict[str, object]]:
        """Every registered version, oldest first: version, semver, created_at (UTC), aliases,
        tags."""
        from datetime import UTC, datetime

        versions = self._versions(model_id)
        aliases: dict[str, list[str]] = {}
        if versions:
            for alias, version in (
                self.client.get_registered_model(model_id).aliases or {}
            ).items():
                aliases.setdefault(str(version), []).append(alias)
        return [
            {
                "version": str(v.version),
                "semver": dict(v.tags).get("semver", ""),
                "created_at": datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "tags": dict(v.tags),
            }
            for v in versions
        ]

    def latest_version(self, model_id: str) -> str | None:
        """The newest registered version (the candidate after a training run)."""
        versions = self._versions(model_id)
        return str(versions[-1].version) if versions else None

    def find_version(self, model_id: str, ref: str) -> str:
        """A registry version from ``3``, ``v3`` or a semantic version such as ``1.2.0`` (the
        newest version carrying it)."""
        ref = str(ref).strip()
        versions = self._versions(model_id)
        if not versions:
            raise RegistryError(f"{model_id}: no version registered")
        plain = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
        if plain.isdigit() and any(str(v.version) == plain for v in versions):
            return plain
        by_semver = [v for v in versions if dict(v.tags).get("semver") == ref.lstrip("vV")]
        if by_semver:
            return str(by_semver[-1].version)
        known = ", ".join(f"{v.version} ({dict(v.tags).get('semver', '?')})" for v in versions)
        raise RegistryError(f"{model_id}: no version {ref!r} (registered: {known})")

    def set_version_tags(self, model_id: str, version: str, tags: dict[str, str]) -> None:
        """Add or replace tags on one version (lifecycle status, gate summary)."""
        for k, v in tags.items():
            self.client.set_model_version_tag(model_id, str(version), k, str(v))
