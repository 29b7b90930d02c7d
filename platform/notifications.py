"""Post-commit notifications: hooks such as ``consent_changed`` run only after the transaction
that recorded the change has committed (never for work that was rolled back).

Services queue a notification on their session; whoever opened the session with a plugin
manager (the API's session dependency, the CLI context) attaches it with :func:`bind`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from voiceseal.plugins import PluginManager

log = logging.getLogger(__name__)

_PM = "voiceseal.pm"
_QUEUE = "voiceseal.notifications"


def bind(session: Session, pm: PluginManager) -> None:
    session.info[_PM] = pm


def queue(session: Session, hook: str, record: dict[str, Any]) -> None:
    session.info.setdefault(_QUEUE, []).append((hook, record))


@event.listens_for(Session, "after_commit")
def _dispatch(session: Session) -> None:
    pending = session.info.pop(_QUEUE, [])
    pm: PluginManager | None = session.info.get(_PM)
    if pm is None:
        return
    for hook, record in pending:
        try:
            getattr(pm.hook, hook)(record=record)
        except Exception:  # a plugin's notification must never undo committed work
            log.exception("%s hook failed", hook)


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(_QUEUE, None)
