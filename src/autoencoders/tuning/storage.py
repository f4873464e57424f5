"""Where a study lives: an SQLAlchemy URL (a SQLite file by default, PostgreSQL for workers on several machines),
and the trials a dead worker left running.

Every trial records its worker (host and process id). A worker that starts marks failed the running trials of
workers on its own host whose process is gone (a kill -9, a crash, a power cut); trials of workers elsewhere are
failed by Optuna's heartbeat once they miss it for ``GRACE_SECONDS``.
"""

from __future__ import annotations

import os
import socket
import time
import warnings

from autoencoders.errors import InputError

HEARTBEAT_SECONDS = 15
GRACE_SECONDS = 60
CONNECT_SECONDS = 10
CREATE_ATTEMPTS = 4


class StorageError(InputError):
    """A study storage that cannot be opened (unreachable server, bad URL, missing driver)."""


def shown_url(url: str) -> str:
    """The URL without its password, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown as given, cut short
        return url.split("@")[-1][:200]


def open_storage(url: str):
    """An Optuna RDBStorage with heartbeats; raises StorageError in one line when it cannot be reached."""
    import optuna
    import sqlalchemy.exc

    url = with_installed_driver(url)
    engine_kwargs: dict = {}
    if url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_SECONDS}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}  # workers of one folder wait for each other's writes
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command prints its own lines
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental; they are what fails a dead worker's trial
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # workers started together on an empty database both create Optuna's tables; the one that loses the
            # race finds them made, and opens the storage again
            if attempt + 1 == CREATE_ATTEMPTS:
                raise
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
            reason = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
            raise StorageError(f"cannot open the study storage {shown_url(url)}: {reason}") from None
    raise AssertionError("unreachable")


def with_installed_driver(url: str) -> str:
    """``postgresql://`` names no driver, and SQLAlchemy 2.1 then takes psycopg 3; the [tune] extra installs
    psycopg2, which this URL then names (an explicit ``postgresql+driver://`` is kept)."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def worker_id() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def fail_dead_trials(storage, study_name: str) -> list[int]:
    """Mark failed the running trials of this host's workers that are no longer alive; returns their numbers."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study_name)
    host = socket.gethostname()
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") == host and isinstance(worker.get("pid"), int) and not _alive(worker["pid"]):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
