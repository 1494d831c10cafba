"""The Tavus avatar of a browser call: lifecycle (`AvatarLifecycle`), where the agent's audio is
heard (`AvatarAudioRouter`), and the Tavus calls the plugin does not make (`avatar.tavus`)."""

from avatar.lifecycle import AvatarConfig, AvatarLifecycle, AvatarRecord
from avatar.router import AvatarAudioRouter

__all__ = ["AvatarAudioRouter", "AvatarConfig", "AvatarLifecycle", "AvatarRecord"]
