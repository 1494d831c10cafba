"""The agents (personas) of the appointment desk: LiveKit glue over prompts and tools."""

from __future__ import annotations

from dataclasses import dataclass

from livekit.agents import Agent

import prompts


@dataclass(frozen=True)
class Persona:
    """Who the agent is on this deployment; fills the prompt templates."""

    language: str
    assistant_name: str
    company_name: str

    def render(self, prompt: str) -> str:
        return prompts.load(self.language, prompt, agent_name=self.assistant_name, company=self.company_name)


class ReceptionAgent(Agent):
    """First agent of every call: greets the caller and finds out what they need."""

    def __init__(self, persona: Persona) -> None:
        super().__init__(instructions=persona.render("system"))
        self._persona = persona

    async def on_enter(self) -> None:
        self.session.say(self._persona.render("greeting"))
