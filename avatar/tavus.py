"""Tavus glue: the plugin's avatar with this call's conversation properties, capturing its audio
sink instead of letting it swap the session's output, and the "end conversation" call the
plugin does not have.

Why the capture: `tavus.AvatarSession.start(session, room)` creates the conversation and then
immediately replaces the session's audio output with a `DataStreamAudioOutput` that blocks,
without any timeout, until the replica's video track is in the room (a mute agent if it never
comes), and that cuts a reply in progress when swapped mid-call. The lifecycle decides itself
when audio goes to the avatar, so `start()` gets a stand-in for the session whose output only
records the sink the plugin built; everything else (events, metrics) reaches the real session.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from livekit.agents import NOT_GIVEN, APIConnectionError, APIConnectOptions, APIStatusError, NotGivenOr, utils
from livekit.agents.voice.io import AudioOutput
from livekit.plugins import tavus
from livekit.plugins.tavus.api import TavusAPI, TavusException

if TYPE_CHECKING:
    from livekit.agents import AgentSession


def conversation_properties(*, max_call_duration: float, participant_left_timeout: float) -> dict[str, int]:
    """When Tavus ends a conversation by itself (it bills until then), in its documented terms:
    `max_call_duration`, the longest a conversation may last (at most 3600 s), and
    `participant_left_timeout`, how long after the last participant left.

    `participant_absent_timeout` ("end if no one joins after creation") is left to Tavus's
    default, as the LiveKit plugin leaves it: whether the LiveKit room's caller counts as one
    who joined is not documented, and a short value could end the face seconds into the call.
    A conversation we lost track of is still ended by `max_call_duration`, and every replica
    we gave up on is removed from the room (then the left-timeout applies).
    """
    return {
        "max_call_duration": math.ceil(max_call_duration),
        "participant_left_timeout": math.ceil(participant_left_timeout),
    }


class _CallTavusAPI(TavusAPI):
    """The plugin's client, with this call's conversation properties added to the create request."""

    def __init__(self, *, extra_properties: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._extra_properties = extra_properties

    async def create_conversation(self, *, properties: NotGivenOr[dict[str, Any]] = NOT_GIVEN, **kwargs: Any) -> str:
        merged = {**self._extra_properties, **(properties if utils.is_given(properties) else {})}
        return await super().create_conversation(properties=merged, **kwargs)


class TavusAvatar(tavus.AvatarSession):
    """`tavus.AvatarSession` whose create request also carries `properties`.

    `AvatarSession.start()` sends only the LiveKit URL and token as properties and has no
    parameter for more, so its API client is replaced by one that merges ours in (same URL,
    key, retries and HTTP session); a plugin without that client fails here, not silently.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str,
        face_id: str,
        pal_id: str | None,
        identity: str,
        conn_options: APIConnectOptions,
        properties: dict[str, Any],
    ) -> None:
        super().__init__(
            face_id=face_id,
            pal_id=pal_id or NOT_GIVEN,
            api_key=api_key,
            api_url=api_url,
            avatar_participant_identity=identity,
            avatar_participant_name=identity,
            conn_options=conn_options,
        )
        if not isinstance(getattr(self, "_api", None), TavusAPI):
            raise TavusException("this livekit-plugins-tavus has no TavusAPI client to extend")
        self._api = _CallTavusAPI(
            extra_properties=properties,
            api_key=api_key,
            api_url=api_url,
            conn_options=conn_options,
            session=self._ensure_http_session(),
        )


class _CapturedOutput:
    def __init__(self) -> None:
        self.sink: AudioOutput | None = None

    def replace_audio_tail(self, sink: AudioOutput) -> None:
        self.sink = sink


class SinkCapture:
    """Stands in for the `AgentSession` inside `AvatarSession.start()`: `output` keeps the sink the
    plugin built; `on`/`off`/`emit` (conversation items in, avatar metrics out) reach the session."""

    def __init__(self, session: AgentSession) -> None:
        self._session = session
        self.output = _CapturedOutput()

    @property
    def sink(self) -> AudioOutput | None:
        return self.output.sink

    def on(self, event: str, callback: Any = None) -> Any:
        return self._session.on(cast(Any, event), callback)

    def off(self, event: str, callback: Any) -> None:
        self._session.off(cast(Any, event), callback)

    def emit(self, event: str, *args: Any) -> None:
        self._session.emit(cast(Any, event), *args)

    def as_session(self) -> AgentSession:
        return cast("AgentSession", self)


def discard_sink(sink: AudioOutput | None) -> None:
    """Stop an avatar sink we will not use. `DataStreamAudioOutput` has no close: its start task
    waits for the replica's video forever (or fails, logged and never observed, when the replica
    leaves), so it is cancelled here."""
    task = getattr(sink, "_start_atask", None)
    if isinstance(task, asyncio.Task) and not task.done():
        task.cancel()


def describe_failure(error: BaseException, *, timeout: float) -> str:
    """The `avatar_status` for a conversation that could not be created."""
    if isinstance(error, TimeoutError):
        return f"api_error: no answer within {timeout:g}s"
    if isinstance(error, APIStatusError):
        return f"api_error: HTTP {error.status_code}"
    if isinstance(error, APIConnectionError):
        return "api_error: connection failed"
    if isinstance(error, TavusException):
        return f"api_error: {error}"
    return f"api_error: {type(error).__name__}"


async def end_conversation(
    http: aiohttp.ClientSession, *, api_url: str, api_key: str, conversation_id: str, timeout: float
) -> str | None:
    """POST {api_url}/conversations/{id}/end (the plugin has no such call); None when Tavus
    accepted it, else what went wrong. Never raises: it runs while the call is being closed."""
    url = f"{api_url.rstrip('/')}/conversations/{conversation_id}/end"
    try:
        async with http.post(
            url, headers={"x-api-key": api_key}, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            return None if response.ok else f"HTTP {response.status}"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except aiohttp.ClientError as e:
        return type(e).__name__
