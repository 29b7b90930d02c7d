"""Every VoiceSeal hook, in one place (pytest style).

Plugins implement these with ``@voiceseal.hookimpl`` and are found through the entry-point group
``voiceseal``. Registry hooks receive a ``register`` callback (see :class:`voiceseal.contracts.Register`);
the core resolves name collisions and aliases. Implementations may accept a subset of the arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from voiceseal.contracts import Register
    from voiceseal.policy import PolicyContext, Refusal, SynthesisRequest

hookspec = pluggy.HookspecMarker("voiceseal")


# --- component registries -----------------------------------------------------------------------


@hookspec
def register_engines(register: Register) -> None:
    """Register synthesis engines (:class:`voiceseal.contracts.Engine` factories).

    :param register: call ``register(name, factory, version=..., description=...)`` once per engine.
    """


@hookspec
def register_vocoders(register: Register) -> None:
    """Register vocoders (:class:`voiceseal.contracts.Vocoder` factories) usable by engines.

    :param register: the registration callback.
    """


@hookspec
def register_adapters(register: Register) -> None:
    """Register adapter kinds (:class:`voiceseal.contracts.AdapterKind`), e.g. LoRA, with trainer and loader.

    :param register: the registration callback.
    """


@hookspec
def register_watermarkers(register: Register) -> None:
    """Register watermark schemes (:class:`voiceseal.contracts.Watermarker` factories).

    The factory receives the secret key in ``ComponentContext.watermark_key``.

    :param register: the registration callback.
    """


@hookspec
def register_speaker_encoders(register: Register) -> None:
    """Register speaker-embedding models (:class:`voiceseal.contracts.SpeakerEncoder`).

    :param register: the registration callback.
    """


@hookspec
def register_transcribers(register: Register) -> None:
    """Register speech recognisers (:class:`voiceseal.contracts.Transcriber`) for consent checks.

    :param register: the registration callback.
    """


@hookspec
def register_text_frontends(register: Register) -> None:
    """Register text normalisers / sentence splitters (:class:`voiceseal.contracts.TextFrontend`).

    :param register: the registration callback.
    """


# --- surfaces -------------------------------------------------------------------------------------


@hookspec
def register_routes(router: Any) -> None:
    """Add API routes.

    :param router: a ``fastapi.APIRouter`` mounted under ``/v1/plugins/x``. Every route must declare
        its roles with ``voiceseal.api.deps.require_roles(...)``; a route without one is refused at
        start-up, because the route-by-role test walks them all.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add CLI commands.

    :param cli: the root ``typer.Typer`` application.
    """


# --- policy and notifications -------------------------------------------------------------------


@hookspec(firstresult=True)
def check_synthesis(request: SynthesisRequest, context: PolicyContext) -> Refusal | None:
    """Veto a synthesis request before any audio is produced.

    Stops at the first non-None result (``firstresult``): the first refusal wins and is recorded.

    :param request: what is being asked (tenant, voice, text, purpose, language).
    :param context: the voice, its active consent and the tenant, as read in this transaction.
    :returns: a :class:`voiceseal.policy.Refusal` to block the request, or None to allow it.
    """


@hookspec
def generation_recorded(record: dict[str, Any]) -> None:
    """Called after a generation row has been committed.

    :param record: the generation as a JSON-able dict (ids, hashes, scores; never audio or secrets).
    """


@hookspec
def consent_changed(record: dict[str, Any]) -> None:
    """Called after a consent event (granted, verified, revoked, expired) has been committed.

    :param record: the consent event as a JSON-able dict.
    """
