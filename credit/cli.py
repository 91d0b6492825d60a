"""``credit``: the platform's one command line (data, benchmarks; later train, serve...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from credit.logging import configure_logging
from credit.settings import PlatformSettings
from services.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from serving_core.feature_store.settings import FeatureStoreSettings

# Every job here may load LightGBM/SHAP: one thread each unless told otherwise (2-core box).
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = typer.Typer(
    help="Credit-scoring platform on the Home Credit Default Risk data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Home Credit data: generate, convert, summarise.", no_args_is_help=True)
app.add_typer(data_app, name="data")
features_app = typer.Typer(help="Feature engineering (one row per client).", no_args_is_help=True)
app.add_typer(features_app, name="features")

# The gateway's decision log and its Parquet archive, as every command that reads them takes
# them: from the gateway's own variables, with the gateway's defaults (GatewaySettings).
DecisionLogUrl = Annotated[
    str, typer.Option(envvar="GATEWAY_DATABASE_URL", help="The gateway's decision log.")
]
DecisionArchiveDir = Annotated[
    Path,
    typer.Option(
        envvar="GATEWAY_DECISION_ARCHIVE_DIR",
        help="Archived decisions (Parquet; read by the gateway).",
    ),
]
DECISION_LOG_URL: str = GatewaySettings.model_fields["database_url"].default
DECISION_ARCHIVE_DIR: Path = GatewaySettings.model_fields["decision_archive_dir"].default


@app.callback()
def main() -> None:
    configure_logging(PlatformSettings().log_format)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@data_app.command("generate")
def data_generate(
    out: Annotated[Path | None, typer.Option(help="Output folder for the CSVs.")] = None,
    clients: Annotated[int | None, typer.Option(help="Applications (train + test).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Generate a synthetic data set in the exact Kaggle schema (8 CSV files)."""
    from training.synthetic import generate

    settings = PlatformSettings()
    rows = generate(
        out or settings.raw_dir,
        n_clients=clients or settings.synthetic_clients,
        seed=settings.seed if seed is None else seed,
    )
    for table, count in rows.items():
        typer.echo(f"{table:>24}: {count:>12,} rows")


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="Folder with the Kaggle CSV (.csv/.csv.gz).")],
    out: Annotated[Path | None, typer.Option(help="Folder for the typed Parquet tables.")] = None,
) -> None:
    """Check Kaggle CSVs against the schema and convert them to typed Parquet."""
    from training.loader import DataValidationError, convert
    from training.quality import print_summary, summarize

    tables_dir = out or PlatformSettings().tables_dir
    try:
        report = convert(source, tables_dir)
    except DataValidationError as exc:
        raise _fail(str(exc)) from None
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    print_summary(summarize(tables_dir))


@data_app.command("summary")
def data_summary(
    tables: Annotated[Path | None, typer.Option(help="Folder of typed tables.")] = None,
) -> None:
    """Print the data-quality summary of the typed tables."""
    from training.quality import print_summary, summarize

    tables_dir = tables or PlatformSettings().tables_dir
    if not (tables_dir / "application_train.parquet").is_file():
        raise _fail(f"no typed tables in {tables_dir}: run `make data` first")
    print_summary(summarize(tables_dir))


@data_app.command("prepare")
def data_prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even if the tables are current.")] = False,
) -> None:
    """Real data if DATA_DIR is set, else the synthetic set -> typed tables -> summary."""
    from training.loader import DataValidationError
    from training.prepare import prepare_tables
    from training.quality import print_summary

    try:
        summary = prepare_tables(PlatformSettings(), force=force)
    except DataValidationError as exc:
        raise _fail(str(exc)) from None
    print_summary(summary)


@features_app.command("build")
def features_build(
    tables: Annotated[Path | None, typer.Option(help="Folder of typed tables.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    if_stale: Annotated[
        bool, typer.Option(help="Skip when the tables and the feature code are unchanged.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="polars (one machine) or spark (PySpark: SPARK_MASTER, default local[*]; "
            "docs/spark.md). Both give the same features."
        ),
    ] = "polars",
) -> None:
    """Typed tables -> features.parquet (one row per client) + feature_schema.json."""
    import json

    import serving_core
    import training.features
    from training.features.pipeline import build_features
    from training.prepare import current_stamp

    settings = PlatformSettings()
    tables_dir = tables or settings.tables_dir
    out_dir = out or settings.features_dir
    if not (tables_dir / "application_train.parquet").is_file():
        raise _fail(f"no typed tables in {tables_dir}: run `make data` first")
    # Inputs, not outputs: parallel float sums make rebuilt files differ in the last bits.
    # The application features, schema and sentinels live in the serving core.
    code = sorted(Path(training.features.__file__).parent.glob("*.py")) + sorted(
        Path(serving_core.__file__).parent.glob("*.py")
    )
    fingerprint = {"tables": current_stamp(tables_dir), "code": [_sha256(p) for p in code]}
    stamp = out_dir / "BUILT_FROM.json"
    if if_stale and stamp.is_file() and json.loads(stamp.read_text()) == fingerprint:
        typer.echo(f"features in {out_dir} are current: not rebuilding")
        return
    stamp.unlink(missing_ok=True)
    if engine == "spark":
        from training.features.spark import build_features_spark

        path = build_features_spark(tables_dir, out_dir)
    elif engine == "polars":
        path = build_features(tables_dir, out_dir)
    else:
        raise _fail(f"unknown engine {engine!r}: polars or spark")
    stamp.write_text(json.dumps(fingerprint) + "\n")
    typer.echo(f"features written to {path}")


@app.command("train")
def train(
    quick: Annotated[bool, typer.Option(help="Fewer folds and trees (for `make up`).")] = False,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    use_protected: Annotated[
        bool, typer.Option(help="Also feed protected attributes (CODE_GENDER) to the model.")
    ] = False,
    if_stale: Annotated[
        bool, typer.Option(help="Skip when the current features already trained a model.")
    ] = False,
    bags: Annotated[
        int | None,
        typer.Option(min=1, help="Seed bagging: LightGBM models per fold, averaged (default 1)."),
    ] = None,
    tune: Annotated[
        int,
        typer.Option(
            min=0,
            help="Nested Optuna search: N_TRIALS settings per outer fold, judged on inner folds "
            "of its training part only (0: off; 1: the current settings, tree count from the "
            "inner folds).",
            metavar="N_TRIALS",
        ),
    ] = 0,
    select: Annotated[
        bool,
        typer.Option(
            help="Drop near-zero-gain inputs, chosen inside each outer fold's training part."
        ),
    ] = False,
) -> None:
    """Train, calibrate, evaluate and register a model (artifacts/metrics.json, MLflow)."""
    import json

    from training.prepare import source_spec
    from training.train import run_training

    settings = PlatformSettings()
    features = settings.features_dir / "features.parquet"
    if not features.is_file():
        raise _fail(f"no features in {settings.features_dir}: run `make features` first")
    stamp = settings.artifacts_dir / "TRAINED_ON.json"
    fingerprint = {
        "features_sha256": _sha256(features),
        "quick": quick,
        "folds": folds,
        "use_protected": use_protected,
        "tracking_uri": settings.mlflow_tracking_uri,
    }
    if bags is not None:
        fingerprint["bags"] = bags
    if tune or select:
        fingerprint.update(tune=tune, select=select)
    if if_stale and stamp.is_file() and json.loads(stamp.read_text()) == fingerprint:
        typer.echo("model is current for these features: not retraining (make train forces it)")
        return
    metrics = run_training(
        settings.features_dir,
        settings.artifacts_dir,
        tracking_uri=settings.mlflow_tracking_uri,
        model_name=settings.model_name,
        n_folds=folds,
        quick=quick,
        cost_fn=settings.cost_false_negative,
        cost_fp=settings.cost_false_positive,
        use_protected=use_protected,
        seed=settings.seed,
        data_source=json.dumps(source_spec(settings), sort_keys=True),
        n_bags=bags,
        tune_trials=tune,
        select_features=select,
    )
    stamp.write_text(json.dumps(fingerprint) + "\n")
    _register_feature_services(settings)
    baselines = ", ".join(f"{k} {v:.4f}" for k, v in metrics["baselines"].items())
    status = "champion" if metrics["promoted"] else "not promoted"
    typer.echo(
        f"model v{metrics['model_version']} ({status})"
        f": AUC {metrics['auc_mean']:.4f} ± {metrics['auc_std']:.4f}, threshold "
        f"{metrics['threshold']:.4f}, baselines: {baselines}"
    )


def _register_feature_services(settings: PlatformSettings) -> list[str]:
    """One Feast feature service per registered model version (its exact inputs)."""
    from mlflow import MlflowClient

    from services.common.registry import ModelRegistry, RegistrySettings
    from serving_core.feature_store.reader import register_model_features
    from serving_core.feature_store.settings import FeatureStoreSettings, open_store

    store_settings = FeatureStoreSettings()
    if not store_settings.registry_path.is_file():
        return []  # nothing materialised yet: `make materialize` registers them
    registry = ModelRegistry(
        RegistrySettings(tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name)
    )
    # The registry is the tracking store: named explicitly, or MlflowClient would take the
    # process-wide MLFLOW_REGISTRY_URI (which mlflow.set_registry_uri exports), list another
    # registry's versions and fail to load them from this one.
    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    store = open_store(store_settings)
    registered = []
    for version in client.search_model_versions(f"name='{settings.model_name}'"):
        model = registry.load(str(version.version))
        registered.append(
            register_model_features(store, model.model_version, model.feature_names).name
        )
    return registered


def _store_marked(store_settings: FeatureStoreSettings) -> bool:
    """Whether the online store holds a complete materialisation's marker and the client
    index (a store materialised before the index existed is loaded again, once)."""
    from serving_core.feature_store.client_index import ClientIndex
    from serving_core.feature_store.completeness import VIEWS, MarkerStore
    from serving_core.feature_store.settings import open_store

    try:
        store = open_store(store_settings)
        if VIEWS not in MarkerStore(store).read():
            return False
        if ClientIndex(store).search("1", 1) is None:
            typer.echo(
                "online store has no client index (materialised before it existed): reloading"
            )
            return False
        return True
    except Exception as error:  # unreachable or unreadable: load again (it says why)
        typer.echo(f"online store not checked ({type(error).__name__}: {error}): reloading")
        return False


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@app.command("materialize")
def materialize_command(
    if_stale: Annotated[
        bool, typer.Option(help="Skip loading when the store already holds these features.")
    ] = False,
) -> None:
    """Apply the Feast repo, load every client's features into the online store
    (ONLINE_STORE=sqlite|redis|redis-cluster) and register each model's feature service."""
    import json

    from serving_core.feature_store.settings import FeatureStoreSettings
    from training.feature_store.materialize import materialize

    settings = PlatformSettings()
    features = settings.features_dir / "features.parquet"
    if not features.is_file():
        raise _fail(f"no features in {settings.features_dir}: run `make features` first")
    store_settings = FeatureStoreSettings()
    stamp = store_settings.data_dir / "MATERIALIZED.json"
    fingerprint = {"features_sha256": _sha256(features), **store_settings.config_dict()}
    current = stamp.is_file() and json.loads(stamp.read_text()) == fingerprint
    # The stamp is a local file: only the store's own marker says its data is still there
    # (a Redis emptied since, or a load cut short, has none).
    if if_stale and current and _store_marked(store_settings):
        services = _register_feature_services(settings)
        typer.echo(f"online store is current; feature services: {', '.join(services)}")
        return
    stamp.unlink(missing_ok=True)
    result = materialize(store_settings, settings.features_dir)
    stamp.write_text(json.dumps(fingerprint) + "\n")
    services = _register_feature_services(settings)
    typer.echo(
        f"{result['clients']:,} clients ({result['values']:,} values) into "
        f"{result['online_store']} at {result['values_per_s']:,.0f} values/s; "
        f"feature services: {', '.join(services) or 'none (no model registered yet)'}"
    )


services_app = typer.Typer(
    help="Run the services in the background (make up/down).", no_args_is_help=True
)
app.add_typer(services_app, name="services")


@services_app.command("start")
def services_start() -> None:
    """Start every service in the background and wait until all are ready."""
    from credit.stack import start
    from services.gateway.keys import DEV_KEY_FILE, DEV_KEYS_FILE, create_dev_key

    if not DEV_KEY_FILE.is_file():
        create_dev_key(DEV_KEYS_FILE, DEV_KEY_FILE)
    try:
        for service in start():
            typer.echo(f"{service.name:>10}: ready at {service.url}")
    except RuntimeError as error:
        raise _fail(str(error)) from None
    typer.echo(f"API docs: http://127.0.0.1:8000/docs  (development API key in {DEV_KEY_FILE})")
    typer.echo("Advisor dashboard: http://127.0.0.1:7860  (demo sign-in: advisor / demo)")


@services_app.command("stop")
def services_stop() -> None:
    """Stop the services started by `credit services start`."""
    from credit.stack import stop

    stopped = stop()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("serve")
def serve(
    service: Annotated[str, typer.Argument(help="scoring | explainer")],
) -> None:
    """Run one service in the foreground (what `make up` starts in the background)."""
    if service == "scoring":
        from services.scoring.server import serve as serve_scoring

        serve_scoring()
    elif service == "explainer":
        from services.explainer.server import serve as serve_explainer

        serve_explainer()
    else:
        raise _fail(f"unknown service {service!r}: scoring or explainer")


@app.command("drift")
def drift(
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    reference: Annotated[Path, typer.Option(help="The model's reference sample.")] = Path(
        "artifacts/reference.parquet"
    ),
    out_dir: Annotated[Path, typer.Option(help="HTML report and metrics.")] = Path(
        "artifacts/drift"
    ),
    since_hours: Annotated[float, typer.Option(help="Decisions of the last N hours.")] = 168,
    pushgateway_url: Annotated[
        str | None,
        typer.Option(
            envvar="PUSHGATEWAY_URL", help="Push metrics there (else out_dir/drift.prom)."
        ),
    ] = None,
) -> None:
    """Compare recent real decisions (inputs and scores) with the reference sample."""
    from training.drift import run_drift

    if not reference.is_file():
        raise _fail(f"no reference sample at {reference}: run `make train` first")
    result = run_drift(
        database_url, reference, out_dir, since_hours=since_hours, pushgateway_url=pushgateway_url
    )
    summary = {k: v for k, v in result.items() if k != "features"}
    typer.echo(", ".join(f"{k}: {v}" for k, v in summary.items()))


decisions_app = typer.Typer(help="The gateway's decision log: retention.", no_args_is_help=True)
app.add_typer(decisions_app, name="decisions")


@decisions_app.command("archive")
def decisions_archive(
    older_than_days: Annotated[
        float, typer.Option(min=0, help="Archive decisions created more than N days ago.")
    ],
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    archive_dir: DecisionArchiveDir = DECISION_ARCHIVE_DIR,
    batch_size: Annotated[int, typer.Option(min=1, help="Decisions per Parquet file.")] = 5_000,
    pushgateway_url: Annotated[
        str | None,
        typer.Option(envvar="PUSHGATEWAY_URL", help="Push the run's metrics there."),
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write the run's metrics there (Prometheus text).")
    ] = None,
    purge_older_than_days: Annotated[
        float | None,
        typer.Option(min=0, help="Retention: delete archive files whose decisions are all older."),
    ] = None,
) -> None:
    """Move old decisions out of the log's table into Parquet (still found by the audit API);
    with --purge-older-than-days, delete archived decisions past the retention period."""
    from datetime import UTC, datetime, timedelta

    from prometheus_client import push_to_gateway, write_to_textfile
    from rich.progress import Progress
    from sqlalchemy import create_engine

    from services.gateway.archive import (
        archive_decisions,
        archive_metrics,
        count_older,
        purge_archives,
    )

    if purge_older_than_days is not None and purge_older_than_days < older_than_days:
        raise _fail("--purge-older-than-days must be at least --older-than-days")
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    engine = create_engine(database_url)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("archiving decisions", total=count_older(engine, cutoff))
            report = archive_decisions(
                engine,
                archive_dir,
                cutoff,
                batch_size,
                on_batch=lambda n: progress.advance(task, n),
            )
    finally:
        engine.dispose()
    purged = None
    if purge_older_than_days is not None:
        purge_cutoff = datetime.now(UTC) - timedelta(days=purge_older_than_days)
        purged = purge_archives(archive_dir, purge_cutoff)
    metrics = archive_metrics(report, finished=datetime.now(UTC), purged=purged)
    if pushgateway_url:
        push_to_gateway(pushgateway_url, job="credit-decision-archive", registry=metrics)
    if metrics_file:
        write_to_textfile(str(metrics_file), metrics)
    typer.echo(
        f"{report.decisions:,} decision(s) created before {cutoff:%Y-%m-%d %H:%M} UTC "
        f"moved into {len(report.files)} file(s) in {archive_dir}"
    )
    if purged is not None:
        typer.echo(
            f"{purged.decisions:,} archived decision(s) created before "
            f"{purged.cutoff:%Y-%m-%d %H:%M} UTC deleted ({len(purged.files)} file(s))"
        )


outcomes_app = typer.Typer(
    help="What became of granted loans (outcomes): import, simulate.", no_args_is_help=True
)
app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet: decision_id, defaulted, observed_at.")
    ],
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    archive_dir: DecisionArchiveDir = DECISION_ARCHIVE_DIR,
    key_id: Annotated[str, typer.Option(help="Recorded as the reporter of these outcomes.")] = (
        "import"
    ),
) -> None:
    """Record a file of outcomes in one transaction (all or nothing); prints how many were
    new, unchanged, conflicting (a different outcome already recorded: not applied) or
    unknown (no such real decision)."""
    from rich.progress import Progress
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from services.gateway.outcomes import OutcomeFileError, import_outcomes, read_outcome_file

    try:
        outcomes = read_outcome_file(file)
    except OutcomeFileError as error:
        raise _fail(f"{error}; nothing imported") from None
    engine = create_engine(database_url)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("importing outcomes", total=len(outcomes))
            summary = import_outcomes(
                engine,
                outcomes,
                key_id=key_id,
                archive_dir=archive_dir if archive_dir.is_dir() else None,
                on_batch=lambda n: progress.advance(task, n),
            )
    except SQLAlchemyError as error:
        raise _fail(
            f"the decision log failed ({str(error).splitlines()[0][:200]}); nothing imported"
        ) from None
    finally:
        engine.dispose()
    typer.echo(
        f"{summary.rows:,} row(s): {summary.new:,} new, {summary.unchanged:,} unchanged, "
        f"{summary.conflicting:,} conflicting, {summary.unknown:,} unknown"
    )
    for decision_id, recorded, offered in summary.conflicts:
        typer.secho(
            f"conflicting: {decision_id} recorded {recorded}, file says {offered}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    for decision_id in summary.unknown_ids:
        typer.secho(f"unknown: {decision_id}", fg=typer.colors.YELLOW, err=True)


@outcomes_app.command("simulate")
def outcomes_simulate(
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    include_refused: Annotated[
        bool, typer.Option(help="Label refused decisions too (only a simulation can).")
    ] = False,
    training_clients: Annotated[
        bool,
        typer.Option(
            help="Label training clients too, with their own TARGET (in sample: the model "
            "was fitted on them, so their figures flatter it)."
        ),
    ] = False,
) -> None:
    """Demonstration: label logged decisions with what became of the clients: the synthetic
    set's held-out truth of its test applicants (out of sample, source `simulated`), and with
    --training-clients training clients' TARGET too (`simulated-train`); granted decisions
    only unless --include-refused."""
    import pandas as pd
    from sqlalchemy import create_engine

    from services.gateway.outcomes import heldout_targets, simulate_outcomes, training_targets

    tables_dir = PlatformSettings().tables_dir
    try:
        targets = heldout_targets(tables_dir)
    except FileNotFoundError as error:
        if not training_clients:
            raise _fail(str(error)) from None
        targets = pd.Series(dtype=int)
    in_sample = None
    if training_clients:
        try:
            trained = training_targets(tables_dir)
        except FileNotFoundError as error:
            raise _fail(str(error)) from None
        targets, in_sample = pd.concat([targets, trained]), trained.index
    engine = create_engine(database_url)
    try:
        summary = simulate_outcomes(
            engine, targets, include_refused=include_refused, in_sample=in_sample
        )
    finally:
        engine.dispose()
    typer.echo(
        f"{summary.labelled:,} decision(s) labelled ({summary.defaulted:,} defaulted, "
        f"{summary.in_sample:,} of training clients); skipped: "
        f"{summary.refused_skipped:,} refused, {summary.unknown_client:,} without a "
        "known truth"
    )


performance_app = typer.Typer(
    help="Realised model performance from outcomes.", no_args_is_help=True
)
app.add_typer(performance_app, name="performance")


@performance_app.command("report")
def performance_report(
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    archive_dir: DecisionArchiveDir = DECISION_ARCHIVE_DIR,
    out_dir: Annotated[Path | None, typer.Option(help="Default: ARTIFACTS_DIR/performance.")] = (
        None
    ),
    pushgateway_url: Annotated[
        str | None,
        typer.Option(
            envvar="PUSHGATEWAY_URL", help="Push metrics there (else out_dir/performance.prom)."
        ),
    ] = None,
) -> None:
    """Per model version and decision month: approval rate, outcomes known, realised vs
    predicted default rate, AUC, Brier, calibration by band, PSI; JSON + HTML + metrics."""
    from training.performance import run_performance

    settings = PlatformSettings()
    try:
        result = run_performance(
            database_url,
            out_dir or settings.artifacts_dir / "performance",
            archive_dir=archive_dir if archive_dir.is_dir() else None,
            artifacts_dir=settings.artifacts_dir,
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            pushgateway_url=pushgateway_url,
        )
    except ValueError as error:
        raise _fail(str(error)) from None
    for version, figures in result["model_versions"].items():
        overall = figures["overall"]
        auc = "n/a" if overall["auc"] is None else f"{overall['auc']:.4f}"
        training = figures["training_auc"]
        ci = overall["auc_ci95"]
        typer.echo(
            f"model v{version}: {overall['decisions']:,} decisions, approval "
            f"{overall['approval_rate']:.1%}, {overall['outcomes_known']:,} outcomes "
            f"({overall['defaults']:,} defaults), realised AUC {auc}"
            f"{'' if ci is None else f' (95% {ci[0]:.3f}-{ci[1]:.3f})'} vs reference "
            f"{_fmt(figures['reference_auc'])} (the model card's on the granted band; "
            f"population {'n/a' if training is None else f'{training:.4f}'}), "
            f"calibration ratio {_fmt(overall['calibration_ratio'])}, PSI {_fmt(overall['psi'])}"
        )
        if overall["exploration"] is not None:
            explored = overall["exploration"]
            typer.echo(
                f"  exploration: {explored['decisions']:,} would-be refusals granted, "
                f"{explored['outcomes_known']:,} outcomes ({explored['defaults']:,} defaults); "
                f"AUC over every applicant (weighted) {_fmt(explored['auc_unbiased'])}"
            )
        if overall["auc_all_outcomes"] is not None:
            typer.echo(
                f"  with the {overall['outcomes_on_refused']:,} simulated outcomes of refused "
                f"decisions: AUC {overall['auc_all_outcomes']:.4f} over every labelled decision"
            )
    typer.echo(
        f"report: {result['report_json']}, {result['report_html']}; metrics: "
        f"{result.get('pushed_to') or result.get('prom_file')}"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


challenger_app = typer.Typer(
    help="Champion/challenger: the challenger's shadow scores.", no_args_is_help=True
)
app.add_typer(challenger_app, name="challenger")


@challenger_app.command("report")
def challenger_report_command(
    database_url: DecisionLogUrl = DECISION_LOG_URL,
    archive_dir: DecisionArchiveDir = DECISION_ARCHIVE_DIR,
    version: Annotated[
        str | None, typer.Option("--challenger", help="Only this challenger version.")
    ] = None,
    cost_fn: Annotated[float, typer.Option(min=0, help="Cost of a granted default.")] = 10.0,
    cost_fp: Annotated[float, typer.Option(min=0, help="Cost of a refused good client.")] = 1.0,
    out_dir: Annotated[Path | None, typer.Option(help="Default: ARTIFACTS_DIR/challenger.")] = (
        None
    ),
) -> None:
    """Before promoting a challenger: agreement with the champion, probability differences,
    decisions that would flip, cost on known outcomes (shadow scores of real decisions)."""
    from training.challenger import challenger_report

    try:
        report = challenger_report(
            database_url,
            archive_dir if archive_dir.is_dir() else None,
            challenger=version,
            cost_fn=cost_fn,
            cost_fp=cost_fp,
            out_dir=out_dir or PlatformSettings().artifacts_dir / "challenger",
        )
    except ValueError as error:
        raise _fail(str(error)) from None
    for pair in report["pairs"]:
        diff, outcomes = pair["probability_difference"], pair["outcomes"]
        flips = ", ".join(f"{k} {n:,}" for k, n in pair["flips"].items()) or "none"
        typer.echo(
            f"challenger v{pair['challenger']} vs champion v{pair['champion']}: "
            f"{pair['decisions']:,} decisions, agreement {pair['agreement_rate']:.1%}; "
            f"flips: {flips}; probability difference mean {diff['mean']:+.4f}, "
            f"mean |d| {diff['mean_abs']:.4f}, p95 |d| {diff['p95_abs']:.4f}; "
            f"cost on {outcomes['known']:,} known outcomes: champion "
            f"{outcomes['cost_champion']:,.0f}, challenger {outcomes['cost_challenger']:,.0f}"
        )
    typer.echo(f"report: {report['report_json']}")


@app.command("bench")
def bench(
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these benchmarks (repeatable).")
    ] = None,
    clients: Annotated[int | None, typer.Option(help="Clients for full-scale runs.")] = None,
) -> None:
    """Measure speed and memory; writes artifacts/bench.json and artifacts/bench.md."""
    from credit.bench import run_benchmarks

    run_benchmarks(PlatformSettings(), only=only, clients=clients)


images_app = typer.Typer(help="Container images (Docker).", no_args_is_help=True)
app.add_typer(images_app, name="images")


@images_app.command("build")
def images_build(
    python_image: Annotated[
        str, typer.Option(envvar="PYTHON_IMAGE", help="Base image of every image.")
    ] = "credit-python:3.11-bookworm",
    tag: Annotated[str, typer.Option(envvar="IMAGE_TAG", help="Tag of the images.")] = "dev",
    only: Annotated[
        list[str] | None, typer.Option(help="Build only these images (repeatable).")
    ] = None,
) -> None:
    """Build the scoring, explainer, gateway, ui and jobs images (credit-scoring/<image>:TAG);
    sizes and build times go to artifacts/bench.json (``images``)."""
    from credit.images import IMAGES, build_images

    unknown = set(only or ()) - set(IMAGES)
    if unknown:
        raise _fail(f"unknown image(s) {sorted(unknown)}; known: {list(IMAGES)}")
    try:
        build_images(
            tuple(i for i in IMAGES if not only or i in only),
            tag=tag,
            python_image=python_image,
            artifacts=Path(PlatformSettings().artifacts_dir),
        )
    except RuntimeError as error:
        raise _fail(str(error)) from None


keys_app = typer.Typer(
    help="Gateway API keys (hashed; the gateway picks changes up without restart).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
KeysFile = Annotated[
    Path,
    typer.Option("--file", envvar="GATEWAY_API_KEYS_FILE", help="The gateway's key file."),
]


@keys_app.command("create")
def keys_create(
    key_id: Annotated[str, typer.Argument(help="A new id (ids are never reused).")],
    partner: Annotated[str, typer.Option(help="The partner (tenant) the key belongs to.")],
    scope: Annotated[
        list[str],
        typer.Option(
            help="A scope (repeatable): score, explain, read:clients, audit, outcomes, audit:all."
        ),
    ],
    rate_per_minute: Annotated[int, typer.Option(min=1)] = 600,
    file: KeysFile = Path(".dev/api-keys.json"),
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from services.gateway.keys import create_key

    try:
        typer.echo(create_key(file, key_id, partner, scope, rate_per_minute))
    except ValueError as error:
        raise _fail(str(error)) from None


@keys_app.command("rotate")
def keys_rotate(key_id: str, file: KeysFile = Path(".dev/api-keys.json")) -> None:
    """Replace a key's secret (same id, partner, scopes) and print the new one."""
    from services.gateway.keys import rotate_key

    try:
        typer.echo(rotate_key(file, key_id))
    except ValueError as error:
        raise _fail(str(error)) from None


@keys_app.command("revoke")
def keys_revoke(key_id: str, file: KeysFile = Path(".dev/api-keys.json")) -> None:
    """Revoke a key: refused (401) from the gateway's next request on."""
    from services.gateway.keys import revoke_key

    try:
        revoke_key(file, key_id)
    except ValueError as error:
        raise _fail(str(error)) from None
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(file: KeysFile = Path(".dev/api-keys.json")) -> None:
    """Id, partner, scopes and state of every key (never a secret)."""
    from services.gateway.keys import list_keys

    for key in list_keys(file):
        state = "revoked" if key.revoked else "active"
        typer.echo(f"{key.id}\t{key.tenant}\t{','.join(key.scopes)}\t{state}")


dashboard_app = typer.Typer(help="The advisor dashboard's accounts.", no_args_is_help=True)
app.add_typer(dashboard_app, name="dashboard")


@dashboard_app.command("hash-password")
def dashboard_hash_password(
    user: Annotated[str, typer.Argument(help="The advisor's sign-in name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for when not given (never echoed).",
        ),
    ],
) -> None:
    """Print a `user:scrypt-hash` entry for UI_USERS (the Secret key `ui-users` on
    Kubernetes); entries are separated by commas."""
    from services.ui.accounts import hash_password

    if not user or ":" in user or "," in user:
        raise _fail("the user name must be non-empty, without ':' or ','")
    typer.echo(f"{user}:{hash_password(password)}")


if __name__ == "__main__":
    app()
