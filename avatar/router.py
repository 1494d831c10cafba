"""The bottom of the session's audio chain during an avatar call: where each reply is heard.

Installed once per call under the session's audio wrappers (transcript sync, recorder),
in place of the room's audio track, which it keeps as the fallback. It

- holds audio until the avatar is ready or has failed (`release`), so the greeting starts
  the moment the avatar's video is up, or on the room track if it never comes;
- plays on the avatar (`DataStreamAudioOutput`) or on the room track, reporting one
  playback start and one playback end per segment upward, as a plain sink does;
- on `fall_back` (the avatar left) moves what the avatar had not played yet of the reply in
  progress, and everything after it, to the room track: the caller hears the whole reply;
- goes back to an avatar (`use_avatar`) only between replies, never in the middle of one.

The avatar plays in real time from its playback start, so what it played is estimated as the
time from then until it left (it cannot be asked once gone). The plugin reports the playback
start when we write the first frame (Tavus sends no "playback started"), and Tavus buffers
audio before its face plays it (`playout_latency`, AVATAR_PLAYOUT_LATENCY), so both that and
`REPLAY_OVERLAP` (network, jitter) are taken off: a cut repeats a syllable rather than drop
words the caller never heard.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents.voice.io import (
    AudioOutput,
    AudioOutputCapabilities,
    PlaybackFinishedEvent,
    PlaybackProgressedEvent,
    PlaybackStartedEvent,
)

AVATAR_SAMPLE_RATE = 24000  # what livekit-plugins-tavus streams to the replica
REPLAY_OVERLAP = 0.2


@dataclass(eq=False)
class _Segment:
    """One reply's audio (frames until a flush), kept until its playback is reported finished."""

    target: AudioOutput
    frames: list[rtc.AudioFrame] = field(default_factory=list)
    duration: float = 0.0
    offset: float = 0.0
    """Where in the segment `target` started playing (0 unless moved from the avatar)."""
    started_at: float | None = None
    flushed: bool = False
    announced: bool = False
    moving: bool = False
    cleared: bool = False


class AvatarAudioRouter(AudioOutput):
    def __init__(self, room_audio: AudioOutput, *, playout_latency: float = 0.0) -> None:
        super().__init__(
            label="AvatarRouter",
            capabilities=AudioOutputCapabilities(pause=True),
            sample_rate=room_audio.sample_rate or AVATAR_SAMPLE_RATE,
        )
        self.room_audio = room_audio
        self.playout_latency = playout_latency
        self._target: AudioOutput | None = None
        self._next_avatar: AudioOutput | None = None
        self._listeners: list[tuple[str, Callable[[Any], None]]] = []
        self._released = asyncio.Event()
        self._lock = asyncio.Lock()
        self._segments: deque[_Segment] = deque()
        self._capturing: _Segment | None = None

    @property
    def target(self) -> AudioOutput | None:
        """Where audio goes now; None while holding."""
        return self._target

    @property
    def can_pause(self) -> bool:
        return self._target is not None and self._target.can_pause

    def release(self, sink: AudioOutput) -> None:
        """The first decision: held audio, and what follows, plays on `sink` from now."""
        self._attach(sink)
        self._released.set()

    def use_avatar(self, sink: AudioOutput) -> None:
        """Play on this (new) avatar: at once if nothing is playing, else from the next reply."""
        if self._target is None or (not self._segments and self._capturing is None):
            self.release(sink)
        else:
            self._next_avatar = sink

    async def fall_back(self, *, left_at: float | None = None) -> None:
        """The avatar is gone (since `left_at`, wall clock): its unplayed audio and everything
        after it go to the room track."""
        self._next_avatar = None
        if self._target is None:
            self.release(self.room_audio)
            return
        old = self._target
        if old is self.room_audio:
            return
        async with self._lock:
            now = time.time() if left_at is None else left_at
            self._attach(self.room_audio)
            if self._capturing is not None and self._capturing.target is old:
                old.flush()  # ends the stream to the departed avatar
            for segment in [s for s in self._segments if s.target is old]:
                await self._move_to_room(segment, now)

    async def _move_to_room(self, segment: _Segment, now: float) -> None:
        played = 0.0
        if segment.started_at is not None:
            heard = now - segment.started_at - self.playout_latency - REPLAY_OVERLAP
            played = max(0.0, min(segment.duration - segment.offset, heard))
        segment.offset += played
        segment.target, segment.started_at, segment.moving = self.room_audio, None, True
        replayed = False
        try:
            for frame in _frames_from(segment.frames, segment.offset):
                if segment.cleared:
                    break
                await self.room_audio.capture_frame(frame)
                replayed = True
        finally:
            segment.moving = False
        if segment.flushed or segment.cleared:
            if replayed:
                self.room_audio.flush()
                if segment.cleared:  # interrupted while moving: stop what was replayed
                    self.room_audio.clear_buffer()
            else:  # the avatar had played all of it: nothing left to hear
                self._finish(segment, segment.duration, interrupted=segment.cleared)

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await self._released.wait()
        async with self._lock:
            segment = self._capturing
            if segment is None:
                if self._next_avatar is not None and not self._segments:
                    self._attach(self._next_avatar)
                    self._next_avatar = None
                assert self._target is not None
                segment = self._capturing = _Segment(self._target)
                self._segments.append(segment)
            await super().capture_frame(frame)
            segment.frames.append(frame)
            segment.duration += frame.duration
            await segment.target.capture_frame(frame)

    def flush(self) -> None:
        super().flush()
        segment, self._capturing = self._capturing, None
        if segment is None:
            return
        segment.flushed = True
        if not segment.moving:  # a move in progress flushes once it has replayed the frames
            segment.target.flush()

    def clear_buffer(self) -> None:
        # while holding there is nothing to clear: captures wait before a segment is counted
        for segment in self._segments:
            segment.cleared = segment.cleared or segment.moving
        for sink in {s.target for s in self._segments if not s.moving}:
            sink.clear_buffer()

    def pause(self) -> None:
        if self._target is not None and self._target.can_pause:
            self._target.pause()

    def resume(self) -> None:
        if self._target is not None and self._target.can_pause:
            self._target.resume()

    def _attach(self, sink: AudioOutput) -> None:
        if sink is self._target:
            return
        if self._target is not None:
            for event, callback in self._listeners:
                self._target.off(event, callback)  # type: ignore[arg-type]
        self._listeners = [
            ("playback_started", lambda ev: self._on_started(sink, ev)),
            ("playback_progressed", lambda ev: self._on_progressed(sink, ev)),
            ("playback_finished", lambda ev: self._on_finished(sink, ev)),
        ]
        for event, callback in self._listeners:
            sink.on(event, callback)  # type: ignore[arg-type]
        self._target = sink

    def _first_on(self, sink: AudioOutput, *, unstarted: bool = False) -> _Segment | None:
        for segment in self._segments:
            if segment.target is sink and (not unstarted or segment.started_at is None):
                return segment
        return None

    def _on_started(self, sink: AudioOutput, ev: PlaybackStartedEvent) -> None:
        segment = self._first_on(sink, unstarted=True)
        if segment is None:
            return
        segment.started_at = ev.created_at
        if not segment.announced:
            segment.announced = True
            self.on_playback_started(created_at=ev.created_at)

    def _on_progressed(self, sink: AudioOutput, ev: PlaybackProgressedEvent) -> None:
        if (segment := self._first_on(sink)) is not None:
            self.on_playback_progressed(
                started_at=ev.started_at, offset=segment.offset + ev.offset, duration=ev.duration
            )

    def _on_finished(self, sink: AudioOutput, ev: PlaybackFinishedEvent) -> None:
        if (segment := self._first_on(sink)) is not None:
            transcript = ev.synchronized_transcript if not segment.offset else None
            self._finish(segment, segment.offset + ev.playback_position, ev.interrupted, transcript)

    def _finish(self, segment: _Segment, position: float, interrupted: bool, transcript: str | None = None) -> None:
        self._segments.remove(segment)
        if self._capturing is segment:
            self._capturing = None
        self.on_playback_finished(
            playback_position=position, interrupted=interrupted, synchronized_transcript=transcript
        )


def _frames_from(frames: list[rtc.AudioFrame], start: float) -> Iterator[rtc.AudioFrame]:
    """The audio of `frames` from `start` seconds on, cutting the frame that straddles it."""
    position = 0.0
    for frame in frames:
        end = position + frame.duration
        if end > start:
            skip = max(0, round((start - position) * frame.sample_rate))
            if skip == 0:
                yield frame
            elif skip < frame.samples_per_channel:
                channels = frame.num_channels
                yield rtc.AudioFrame(
                    data=bytes(frame.data[skip * channels :]),
                    sample_rate=frame.sample_rate,
                    num_channels=channels,
                    samples_per_channel=frame.samples_per_channel - skip,
                )
        position = end
