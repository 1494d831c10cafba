"""The agents (personas) of the appointment desk: LiveKit glue over prompts and the desk.

Two agents share one `AppointmentDesk` (the call's state and rules):

- `ReceptionAgent` greets, verifies the caller, takes contact details and callback
  requests, and hands over to a human. Its tools cannot touch appointments.
- `AppointmentsAgent` exists only after verification (`verify_caller` returns it: a
  LiveKit agent handoff) and carries the appointment tools.

The tools live in toolsets (`VerificationTools`, `ContactTools`, `AppointmentTools`);
each is a thin `@function_tool` over the desk that turns a `DeskError` into a
`ToolError` worded from `prompts/<lang>/`, and gives a slow step its progress lines
(`tools/progress.py`) through LiveKit's filler support (`RunContext.with_filler`).

Before each LLM call an agent counts the caller's turn (for the confirm-in-a-later-turn
rule), trims the context to the last `history_max_messages` messages, and adds the call
context (date, time zone, verification state) after its instructions. The session's
history, which feeds the call record, is not trimmed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from livekit import api
from livekit.agents import Agent, ModelSettings, RunContext, get_job_context, llm
from livekit.agents.llm import ToolError, Toolset, function_tool
from livekit.agents.voice.generation import INSTRUCTIONS_MESSAGE_ID
from pydantic import StrictBool
from pydantic_core import from_json

import prompts
from desk.call_state import DeskError
from desk.desk import AppointmentDesk
from tools.progress import POLL_INTERVAL, ProgressLines, ToolState, ToolStatus

logger = logging.getLogger("tools.agents")

T = TypeVar("T")
PROPOSAL_TOOLS = frozenset({"book_appointment", "reschedule_appointment", "cancel_appointment"})


@dataclass(frozen=True)
class Persona:
    """Who the agent is on this deployment; fills the prompt templates."""

    language: str
    assistant_name: str
    company_name: str

    def render(self, prompt: str) -> str:
        return prompts.load(self.language, prompt, agent_name=self.assistant_name, company=self.company_name)


def trim_history(chat_ctx: llm.ChatContext, max_messages: int) -> None:
    """Keep the last `max_messages` caller/agent messages (and what follows them), in place.

    Leading instructions are kept and no tool output is left without its call.
    """
    positions = [
        i for i, item in enumerate(chat_ctx.items) if item.type == "message" and item.role in ("user", "assistant")
    ]
    if len(positions) <= max_messages:
        return
    cut = positions[-max_messages] if max_messages else len(chat_ctx.items)
    chat_ctx.truncate(max_items=len(chat_ctx.items) - cut)


def _insert_after_instructions(chat_ctx: llm.ChatContext, texts: list[str]) -> None:
    items = chat_ctx.items
    at = 0
    while at < len(items) and items[at].type == "message" and items[at].role in ("system", "developer"):
        at += 1
    for offset, text in enumerate(texts):
        items.insert(at + offset, llm.ChatMessage(role="system", content=[text]))


def _replace_instructions(chat_ctx: llm.ChatContext, instructions: str) -> None:
    """This reply's instructions (LiveKit's instructions message), in the call's new language."""
    for index, item in enumerate(chat_ctx.items):
        if item.type == "message" and item.id == INSTRUCTIONS_MESSAGE_ID:
            rest = [c for c in item.content if not isinstance(c, str)]  # e.g. a cache breakpoint
            chat_ctx.items[index] = llm.ChatMessage(
                id=item.id, role=item.role, content=[instructions, *rest], created_at=item.created_at
            )
            return
    chat_ctx.items.insert(0, llm.ChatMessage(id=INSTRUCTIONS_MESSAGE_ID, role="system", content=[instructions]))


TRANSFER_RINGING_TIMEOUT = 30
"""Seconds the human's phone may ring before the transfer fails (LiveKit's default, pinned here)."""


def strict_json_object(arguments: str) -> bool:
    """Are these tool-call arguments a JSON object as sent (empty counts as `{}`), no repair needed?"""
    if not arguments.strip():
        return True
    try:
        value = from_json(arguments)
        if isinstance(value, str):  # double-encoded by some providers: one more strict pass
            value = from_json(value)
    except ValueError:
        return False
    return value is None or isinstance(value, dict)


async def transfer_sip_participant(participant_identity: str, destination: str) -> None:
    """Cold-transfer the SIP caller of this job's room (LiveKit SIP API). The caller hears a dial
    tone while the human's phone rings, never silence; the request's own timeout (ring window
    plus a margin) comes from livekit-api."""
    job = get_job_context()
    response = await job.api.sip.transfer_sip_participant(
        api.TransferSIPParticipantRequest(
            room_name=job.room.name,
            participant_identity=participant_identity,
            transfer_to=destination,
            play_dialtone=True,
            ringing_timeout={"seconds": TRANSFER_RINGING_TIMEOUT},
        )
    )
    if response.status == api.SIPTransferStatus.STS_TRANSFER_FAILED:
        raise RuntimeError(f"SIP transfer failed: {api.SIPTransferReason.Name(response.reason)}")


class _DeskToolset(Toolset):
    def __init__(self, desk: AppointmentDesk, *, id: str) -> None:
        self.desk = desk
        super().__init__(id=id)

    def _refuse_broken(self, context: RunContext) -> None:
        """First line of every tool: a call whose JSON the model broke (LiveKit repaired it into
        something, e.g. `{"zip_code": "941` into "941") is refused before it can count as an
        attempt or change anything; the message tells the model to call again."""
        call = getattr(context, "function_call", None)  # a RunContext always has one; a direct call may not
        if call is not None and call.call_id in self.desk.state.broken_calls:
            raise ToolError(self.desk.phrases.line("arguments_broken"))

    @asynccontextmanager
    async def _step(self, context: RunContext | None, acknowledgement: str | None = None) -> AsyncIterator[None]:
        """Errors the caller should hear become `ToolError`s; a slow step gets progress lines.

        Progress also goes to the desk's status sink: working, still_working, done or failed.
        """
        tool = context.function_call.name if context is not None else ""
        self._publish(tool, "working", self.desk.phrases.line(acknowledgement) if acknowledgement else "")
        outcome: ToolState = "failed"
        try:
            async with self._progress(context, tool, acknowledgement):
                yield
            outcome = "done"
        except DeskError as e:
            raise ToolError(self.desk.render(e)) from None
        finally:
            self._publish(tool, outcome)

    def _progress(
        self, context: RunContext | None, tool: str, acknowledgement: str | None
    ) -> AbstractAsyncContextManager[None]:
        if context is None or acknowledgement is None:
            return nullcontext()
        config = self.desk.config
        lines = ProgressLines(
            self.desk,
            acknowledgement,
            still_working_after=config.still_working_after,
            on_still_working=lambda line: self._publish(tool, "still_working", line),
        )
        return context.with_filler(lines, delay=config.acknowledgement_delay, interval=POLL_INTERVAL, max_steps=2)

    def _publish(self, tool: str, state: ToolState, text: str = "") -> None:
        if tool and self.desk.status is not None:
            self.desk.status(ToolStatus(tool, state, text, time.time()))

    async def _run(self, context: RunContext | None, acknowledgement: str | None, op: Callable[[], Awaitable[T]]) -> T:
        async with self._step(context, acknowledgement):
            return await op()


class VerificationTools(_DeskToolset):
    """Tools of an unverified call: identify the caller, then hand over to the appointments agent."""

    def __init__(self, desk: AppointmentDesk, on_verified: Callable[[Agent], Agent]) -> None:
        self._on_verified = on_verified
        super().__init__(desk, id="verification")

    @function_tool
    async def verify_caller(self, context: RunContext, zip_code: str) -> Any:
        """Verify the caller's identity with the ZIP (postal) code registered on their account.

        The phone number is taken from the call itself; never ask the caller for it unless a
        tool said it is missing. Call this only after the caller has said their ZIP code.

        Args:
            zip_code: The ZIP code as the caller said it, e.g. "12345".
        """
        self._refuse_broken(context)
        # The result and the handover go together: a barge-in must not cut the caller off from
        # hearing it. Already interrupted: the caller is speaking (maybe correcting the code),
        # so no attempt is counted.
        try:
            context.disallow_interruptions()
        except RuntimeError:
            raise ToolError(self.desk.phrases.line("verify_interrupted")) from None
        result = await self._run(context, "ack_verify", lambda: self.desk.verify(zip_code))
        if result.newly:
            return self._on_verified(context.session.current_agent)
        return None  # a parallel duplicate call: the first one hands over, this one stays silent

    @function_tool
    async def provide_phone_number(self, context: RunContext, phone: str) -> str:
        """Record the caller's phone number for verification, only when a tool said the call has none.

        Args:
            phone: The phone number registered with us, as the caller said it, e.g. "0991 234 567".
        """
        self._refuse_broken(context)
        async with self._step(None):
            return self.desk.provide_phone(phone)


class ContactTools(_DeskToolset):
    """Contact details, callback requests and a human, at any point of the call."""

    def __init__(self, desk: AppointmentDesk) -> None:
        super().__init__(desk, id="contact")

    @function_tool
    async def save_caller_details(self, context: RunContext, name: str, phone: str, email: str) -> str:
        """Save the caller's contact details for our records and for a callback.

        Args:
            name: The caller's full name, or "" if not given.
            phone: A phone number to reach the caller on, or "" if not given.
            email: An email address, or "" if not given.
        """
        self._refuse_broken(context)
        async with self._step(None):
            return self.desk.save_details(name, phone, email)

    @function_tool
    async def request_callback(self, context: RunContext, reason: str) -> str:
        """Ask a human colleague to call the caller back. Needs a phone number: the verified
        customer's, the call's, or one saved with save_caller_details.

        Args:
            reason: What the caller needs, in one short sentence.
        """
        self._refuse_broken(context)
        return await self._run(context, "ack_saving", lambda: self.desk.request_callback(reason))

    @function_tool
    async def transfer_to_human(self, context: RunContext, reason: str) -> str:
        """Hand the caller over to a human colleague: a live transfer when possible, otherwise
        a callback request. Use when the caller asks for a person or you cannot help.

        Args:
            reason: Why the caller needs a human, in one short sentence.
        """
        self._refuse_broken(context)
        desk = self.desk
        if desk.warm:
            async with self._step(None):
                context.disallow_interruptions()
                return await desk.warm_transfer(reason)
        if desk.escalation_target() is None:
            return await self._run(context, "ack_saving", lambda: desk.transfer(reason))
        async with self._step(None):
            context.disallow_interruptions()
            line = desk.phrases.line("transfer_started")
            await context.session.say(line, allow_interruptions=False).wait_for_playout()
            return await desk.transfer(reason)


class AppointmentTools(_DeskToolset):
    """The verified customer's appointments. Changes are proposed, then confirmed in a later turn."""

    def __init__(self, desk: AppointmentDesk) -> None:
        super().__init__(desk, id="appointments")

    @function_tool
    async def list_appointments(self, context: RunContext) -> str:
        """List the verified caller's upcoming appointments, each with a reference like "A1"."""
        self._refuse_broken(context)
        return await self._run(context, "ack_appointments", self.desk.list_appointments)

    @function_tool
    async def list_available_slots(
        self,
        context: RunContext,
        from_date: str,
        to_date: str,
        part_of_day: Literal["any", "morning", "afternoon", "evening"],
    ) -> str:
        """Find open appointment times, each with a reference like "S1", for one day or a range.

        Args:
            from_date: First day, YYYY-MM-DD (work it out from today's date in your instructions).
            to_date: Last day, YYYY-MM-DD; the same as from_date for a single day (at most 14 days).
            part_of_day: "morning", "afternoon", "evening", or "any".
        """
        self._refuse_broken(context)
        return await self._run(context, "ack_slots", lambda: self.desk.list_slots(from_date, to_date, part_of_day))

    @function_tool
    async def book_appointment(self, context: RunContext, slot_ref: str) -> str:
        """Propose booking an open slot. Nothing is booked yet: ask the caller the question this
        returns, then call confirm_pending_change with their answer in their next turn.

        Args:
            slot_ref: The slot reference from list_available_slots, e.g. "S2".
        """
        self._refuse_broken(context)
        return await self._run(context, "ack_change", lambda: self.desk.propose_booking(slot_ref))

    @function_tool
    async def reschedule_appointment(self, context: RunContext, appointment_ref: str, slot_ref: str) -> str:
        """Propose moving an appointment to an open slot. Nothing changes yet: ask the caller the
        question this returns, then call confirm_pending_change with their answer next turn.

        Args:
            appointment_ref: The appointment reference from list_appointments, e.g. "A1".
            slot_ref: The new slot's reference from list_available_slots, e.g. "S3".
        """
        self._refuse_broken(context)
        return await self._run(context, "ack_change", lambda: self.desk.propose_reschedule(appointment_ref, slot_ref))

    @function_tool
    async def cancel_appointment(self, context: RunContext, appointment_ref: str) -> str:
        """Propose cancelling an appointment. Nothing changes yet: ask the caller the question
        this returns, then call confirm_pending_change with their answer next turn.

        Args:
            appointment_ref: The appointment reference from list_appointments, e.g. "A1".
        """
        self._refuse_broken(context)
        async with self._step(None):
            return self.desk.propose_cancel(appointment_ref)

    @function_tool
    async def confirm_pending_change(self, context: RunContext, confirmed: StrictBool) -> str:
        """Carry out (confirmed=true) or drop (confirmed=false) the change you proposed, after the
        caller answered your confirmation question in a new turn. Never in the same turn as the
        proposal, and never without a clear answer from the caller.

        Args:
            confirmed: True only if the caller clearly said yes; false if they said no or hesitated.
        """
        self._refuse_broken(context)
        if confirmed:
            # The write and its answer go together: a barge-in must not cut the caller off
            # from hearing whether it happened. Already interrupted: the caller is speaking
            # (maybe "wait, no"), so nothing is written and the question stays open.
            try:
                context.disallow_interruptions()
            except RuntimeError:
                raise ToolError(self.desk.phrases.line("change_interrupted")) from None
        return await self._run(context, "ack_change", lambda: self.desk.confirm(confirmed))


class _DeskAgent(Agent):
    def __init__(
        self,
        persona: Persona,
        desk: AppointmentDesk | None,
        *,
        role: str | None,
        tools: list[llm.Tool | llm.Toolset],
        chat_ctx: llm.ChatContext | None = None,
    ) -> None:
        self._persona = persona
        self._desk = desk
        self._role = role
        self._language = desk.language.current if desk is not None else persona.language
        """The language this agent's instructions are in; they follow the call's before each reply."""
        super().__init__(instructions=self._instructions_in(self._language), tools=tools, chat_ctx=chat_ctx)

    def _instructions_in(self, language: str) -> str:
        instructions = replace(self._persona, language=language).render("system")
        if self._role is not None:
            instructions = f"{instructions}\n\n{prompts.load(language, self._role)}"
        return instructions

    @property
    def language(self) -> str:
        return self._language

    @property
    def desk(self) -> AppointmentDesk | None:
        return self._desk

    def llm_node(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings) -> Any:
        desk = self._desk
        if desk is None:
            return Agent.default.llm_node(self, chat_ctx, tools, model_settings)
        users = [i for i in chat_ctx.items if i.type == "message" and i.role == "user"]
        if users:
            desk.state.note_user_message(users[-1].id, users[-1].text_content, users[-1].transcript_confidence)
            desk.hear(users[-1].id, users[-1].text_content)  # may switch the call's language
        follow = None
        if desk.language.current != self._language:
            # This reply is in the call's new language whatever is kept: replace its instructions.
            _replace_instructions(chat_ctx, self._instructions_in(desk.language.current))
            if self.session.input.audio is None:
                follow = desk.language.current  # text turns: no preemptive reply to keep valid
        trim_history(chat_ctx, desk.config.history_max_messages)
        _insert_after_instructions(chat_ctx, [desk.call_context(), *desk.turn_hints()])
        return self._watch_proposals(Agent.default.llm_node(self, chat_ctx, tools, model_settings), desk, follow)

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        # A preemptive reply, drafted from the turn's first words, may have switched the language:
        # the whole turn confirms or undoes that. Keep the instructions in the call's language now,
        # after LiveKit copied the context it checks that reply against, so the reply stays valid.
        if self._desk is not None:
            self._desk.turn_ended(new_message.id, new_message.text_content)
            await self._follow_language(self._desk.language.current)

    async def _follow_language(self, language: str) -> None:
        """Keep this agent's instructions in `language` for its later replies (`update_instructions`)."""
        if language != self._language:
            self._language = language
            await self.update_instructions(self._instructions_in(language))

    async def _watch_proposals(self, stream: Any, desk: AppointmentDesk, follow: str | None) -> AsyncIterator[Any]:
        """Before any tool runs: mark a proposal as soon as the model asks for one, so that a
        confirmation in the same step (parallel calls, any order) is refused; and note calls
        whose arguments are not valid JSON (LiveKit would repair and run them), so they are refused.

        `follow`: the call's new language, for the agent's instructions from now on."""
        if follow is not None:
            await self._follow_language(follow)
        try:
            async for chunk in stream:
                delta = chunk.delta if isinstance(chunk, llm.ChatChunk) else None
                calls = delta.tool_calls or () if delta is not None else ()
                for call in calls:
                    if not strict_json_object(call.arguments):
                        desk.state.broken_calls.add(call.call_id)
                        logger.warning("tool call %s with broken JSON arguments refused", call.name)
                if any(c.name in PROPOSAL_TOOLS for c in calls):
                    desk.state.begin_proposal()
                yield chunk
        finally:
            if hasattr(stream, "aclose"):
                await stream.aclose()

    def handoff_context(self) -> llm.ChatContext:
        """This agent's conversation for the next agent, trimmed, without its instructions."""
        chat_ctx = self.chat_ctx.copy(exclude_instructions=True, exclude_function_call=True)
        if self._desk is not None:
            trim_history(chat_ctx, self._desk.config.history_max_messages)
        return chat_ctx


class ReceptionAgent(_DeskAgent):
    """First agent of every call: greets, verifies, takes details, routes.

    Without a desk (no appointment store wired) it only greets and talks.
    """

    def __init__(self, persona: Persona, desk: AppointmentDesk | None = None) -> None:
        tools: list[llm.Tool | llm.Toolset] = []
        if desk is not None:
            tools = [VerificationTools(desk, self.after_verification), ContactTools(desk)]
        super().__init__(persona, desk, role="reception" if desk is not None else None, tools=tools)

    def after_verification(self, current: Agent) -> Agent:
        """The agent a verified call continues with (verify_caller and the keypad hand over to it)."""
        assert self._desk is not None
        chat_ctx = current.handoff_context() if isinstance(current, _DeskAgent) else None
        return AppointmentsAgent(self._persona, self._desk, chat_ctx=chat_ctx)

    async def on_enter(self) -> None:
        self.session.say(self.greeting())

    def greeting(self) -> str:
        """The greeting in the call's language; when nothing chose it, with one short line in each
        other language the deployment serves, saying the caller may speak it."""
        greeting = replace(self._persona, language=self._language).render("greeting")
        language = self._desk.language if self._desk is not None else None
        if language is None or language.cause != "default":
            return greeting
        return " ".join([greeting, *(prompts.load(other, "language_offer") for other in language.others)])


class AppointmentsAgent(_DeskAgent):
    """The verified caller's appointments: list, book, reschedule, cancel (with confirmation)."""

    def __init__(self, persona: Persona, desk: AppointmentDesk, *, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(
            persona,
            desk,
            role="appointments",
            tools=[AppointmentTools(desk), ContactTools(desk)],
            chat_ctx=chat_ctx,
        )

    async def on_enter(self) -> None:
        # Carry on from what the caller asked before verification, now with the tools.
        self.session.generate_reply()
