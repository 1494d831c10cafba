"""ReceptionAgent in a real text-mode AgentSession driven by ScriptedLLM (offline).

Also checks ScriptedLLM itself (tool calls, parallel calls, replies computed from tool
output, usage, loud failure when the script runs out), since scenario tests rely on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from livekit.agents import Agent, AgentSession, APIConnectionError, function_tool
from livekit.agents.voice.run_result import RunResult

import prompts
from calls import persona_for
from settings import Settings
from testkit.scripted_llm import LLMCall, Reply, ScriptedLLM, ScriptExhausted, ToolCall, usage
from tools.agents import Persona, ReceptionAgent

pytestmark = pytest.mark.asyncio

WAIT = 15.0
"""Upper bound for any single await; they normally take milliseconds."""
LANGUAGES = ["en", "ar"]
NAME, COMPANY = "Lina", "Cedar Dental"


def persona(lang: str) -> Persona:
    return persona_for(Settings(language=lang, assistant_name=NAME, company_name=COMPANY))


def expected(lang: str, prompt: str) -> str:
    return prompts.load(lang, prompt, agent_name=NAME, company=COMPANY)


async def start(session: AgentSession, agent: Agent) -> RunResult:
    """Start the session and wait until the agent's on_enter (the greeting) has played, so
    the first user turn comes after the greeting as on a real call."""
    return await asyncio.wait_for(session.start(agent, capture_run=True), WAIT)


@pytest_asyncio.fixture
async def scripted() -> ScriptedLLM:
    return ScriptedLLM()


@pytest_asyncio.fixture
async def session(scripted: ScriptedLLM) -> AsyncIterator[AgentSession]:
    async with AgentSession(llm=scripted, vad=None, turn_handling={"turn_detection": None}) as s:
        yield s


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_greets_with_prompt_greeting(lang: str, session: AgentSession, scripted: ScriptedLLM) -> None:
    result = await start(session, ReceptionAgent(persona(lang)))

    result.expect.next_event().is_agent_handoff(new_agent_type=ReceptionAgent)
    greeting = result.expect.next_event().is_message(role="assistant").event().item
    result.expect.no_more_events()
    assert greeting.text_content == expected(lang, "greeting")
    assert NAME in greeting.text_content and COMPANY in greeting.text_content
    assert [m.text_content for m in session.history.messages() if m.role == "assistant"] == [expected(lang, "greeting")]
    assert scripted.calls == [], "the greeting is fixed text, not generated"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_instructions_come_from_system_prompt(lang: str) -> None:
    agent = ReceptionAgent(persona(lang))

    template = (prompts.PROMPTS_DIR / lang / "system.txt").read_text(encoding="utf-8").strip()
    assert agent.instructions == template.format(agent_name=NAME, company=COMPANY)
    assert agent.instructions == expected(lang, "system")


@pytest.mark.parametrize(
    ("lang", "user_text", "reply_text"),
    [
        ("en", "I want to book an appointment.", "Of course, may I have your phone number?"),
        ("ar", "أريد حجز موعد.", "بالتأكيد، ما رقم هاتفك؟"),
    ],
)
async def test_answers_a_user_turn(
    lang: str, user_text: str, reply_text: str, session: AgentSession, scripted: ScriptedLLM
) -> None:
    agent = ReceptionAgent(persona(lang))
    await start(session, agent)
    scripted.push(Reply(reply_text))

    result = await asyncio.wait_for(session.run(user_input=user_text), WAIT)

    reply = result.expect.next_event().is_message(role="assistant").event().item
    result.expect.no_more_events()
    assert reply.text_content == reply_text

    [call] = scripted.calls
    assert call.instructions == expected(lang, "system")
    assert call.last_user_text == user_text
    # the model sees what the caller already heard, in order
    assert [(m.role, m.text_content) for m in call.messages if m.role != "system"] == [
        ("assistant", expected(lang, "greeting")),
        ("user", user_text),
    ]
    assert call.tool_names == sorted(t.id for t in agent.tools)
    scripted.assert_done()


async def test_usage_is_counted(session: AgentSession, scripted: ScriptedLLM) -> None:
    await start(session, ReceptionAgent(persona("en")))
    scripted.push(Reply("Sure.", usage=usage(120, 8)), Reply("Okay.", usage=usage(140, 4)))

    await asyncio.wait_for(session.run(user_input="Hello"), WAIT)
    await asyncio.wait_for(session.run(user_input="Thanks"), WAIT)

    [model_usage] = session.usage.model_usage
    assert (model_usage.provider, model_usage.model) == ("scripted", "scripted")
    assert (model_usage.input_tokens, model_usage.output_tokens) == (260, 12)


async def test_running_out_of_script_fails_loudly(session: AgentSession, scripted: ScriptedLLM) -> None:
    await start(session, ReceptionAgent(persona("en")))

    with pytest.raises(ScriptExhausted, match="no step for call #0"):
        await asyncio.wait_for(session.run(user_input="Hello?"), WAIT)
    assert len(scripted.errors) == 1


async def test_default_reply_when_script_is_empty() -> None:
    scripted = ScriptedLLM(default=Reply("Sorry, could you repeat that?"))
    async with AgentSession(llm=scripted, vad=None, turn_handling={"turn_detection": None}) as session:
        await start(session, ReceptionAgent(persona("en")))
        for text in ("one", "two"):
            result = await asyncio.wait_for(session.run(user_input=text), WAIT)
            result.expect.next_event().is_message(role="assistant")
    assert len(scripted.calls) == 2
    scripted.assert_done()


# -- ScriptedLLM tool flows (what scenario tests build on) ----------------------------------


class DeskAgent(Agent):
    """A test-only agent with two tools; the second becomes available after the first."""

    def __init__(self) -> None:
        super().__init__(instructions="Test desk.")
        self.log: list[str] = []

    @function_tool
    async def find_slot(self, day: str) -> str:
        """Find a free slot.

        Args:
            day: Day of the week.
        """
        self.log.append(f"find_slot:{day}")
        return f"slot-{day}-0900"

    @function_tool
    async def check_doctor(self, name: str) -> str:
        """Check a doctor exists.

        Args:
            name: The doctor's name.
        """
        self.log.append(f"check_doctor:{name}")
        return f"doctor {name} ok"


async def test_tool_call_then_reply_from_tool_output(session: AgentSession, scripted: ScriptedLLM) -> None:
    agent = DeskAgent()
    await start(session, agent)

    def confirm(call: LLMCall) -> Reply:
        return Reply(f"I found {call.last_tool_output('find_slot').output}.")

    scripted.push(Reply("Let me look.", tool_calls=[ToolCall("find_slot", {"day": "monday"})]), confirm)

    result = await asyncio.wait_for(session.run(user_input="Monday please"), WAIT)

    result.expect.next_event().is_message(role="assistant")
    result.expect.next_event().is_function_call(name="find_slot", arguments={"day": "monday"})
    result.expect.next_event().is_function_call_output(output="slot-monday-0900", is_error=False)
    final = result.expect.next_event().is_message(role="assistant").event().item
    result.expect.no_more_events()
    assert final.text_content == "I found slot-monday-0900."
    assert agent.log == ["find_slot:monday"]
    assert [c.tool_names for c in scripted.calls] == [["check_doctor", "find_slot"]] * 2
    assert scripted.calls[1].tool_outputs[-1].output == "slot-monday-0900"
    scripted.assert_done()


async def test_parallel_tool_calls(session: AgentSession, scripted: ScriptedLLM) -> None:
    agent = DeskAgent()
    await start(session, agent)
    scripted.push(
        Reply(tool_calls=[ToolCall("find_slot", {"day": "friday"}), ToolCall("check_doctor", {"name": "Haddad"})]),
        Reply("Dr Haddad is free on Friday."),
    )

    result = await asyncio.wait_for(session.run(user_input="Friday with Dr Haddad"), WAIT)

    result.expect.contains_function_call(name="find_slot", arguments={"day": "friday"})
    result.expect.contains_function_call(name="check_doctor", arguments={"name": "Haddad"})
    result.expect.contains_function_call_output(output="doctor Haddad ok")
    result.expect.contains_message(role="assistant")
    assert sorted(agent.log) == ["check_doctor:Haddad", "find_slot:friday"]
    assert sorted(o.name for o in scripted.calls[1].tool_outputs) == ["check_doctor", "find_slot"]


async def test_bad_arguments_become_tool_error(session: AgentSession, scripted: ScriptedLLM) -> None:
    agent = DeskAgent()
    await start(session, agent)
    scripted.push(
        Reply(tool_calls=[ToolCall("find_slot", raw_arguments='{"weekday": 1}')]),
        lambda call: Reply("Sorry." if call.last_tool_output().is_error else "Unexpected."),
    )

    result = await asyncio.wait_for(session.run(user_input="whenever"), WAIT)

    result.expect.next_event().is_function_call(name="find_slot")
    result.expect.next_event().is_function_call_output(is_error=True)
    assert result.expect.next_event().is_message(role="assistant").event().item.text_content == "Sorry."
    assert agent.log == []


async def test_scripted_llm_error_fails_the_run(session: AgentSession, scripted: ScriptedLLM) -> None:
    await start(session, ReceptionAgent(persona("en")))
    scripted.push(Reply(error=APIConnectionError("scripted outage", retryable=False)))

    with pytest.raises(APIConnectionError, match="scripted outage"):
        await asyncio.wait_for(session.run(user_input="Hello?"), WAIT)
    assert len(scripted.errors) == 1
