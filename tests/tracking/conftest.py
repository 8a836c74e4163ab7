"""A real MLflow tracking store (sqlite) for the tracking tests; each test gets its own experiment."""

import contextlib
import os
import sys

import dspy
import pytest


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    """One sqlite store for the session: creating its tables takes seconds, an experiment does not."""
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables once
    return uri


@pytest.fixture
def experiment(tracking_uri, tmp_path, monkeypatch, request):
    """A fresh experiment (artifacts under tmp_path), made current through MLflow's environment variables."""
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(f"{request.node.name}-{os.getpid()}-{id(tmp_path)}",
                                             artifact_location=(tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    return experiment_id


@pytest.fixture
def autolog():
    """`mlflow.dspy.autolog` on for one test, then off again with DSPy's settings as they were.

    autolog configures DSPy's process-wide settings (its `MlflowCallback`), which the test's own
    `dspy.context` (tests/conftest.py) would hide: each call also enters a context that shows them."""
    mlflow = pytest.importorskip("mlflow")
    from dspy.dsp.utils.settings import main_thread_config

    settings = {"callbacks": list(main_thread_config["callbacks"]), "track_usage": main_thread_config["track_usage"]}
    contexts = contextlib.ExitStack()

    def enable(**options):
        import mlflow.dspy

        mlflow.dspy.autolog(**options)
        contexts.enter_context(dspy.context(callbacks=list(main_thread_config["callbacks"]),
                                            track_usage=main_thread_config["track_usage"]))

    with contexts:
        yield enable
    if "mlflow.dspy" in sys.modules:
        mlflow.dspy.autolog(disable=True)
    dspy.settings.configure(**settings)
