"""The call's record: transcript buffer, journal, caller details, flush, recovery, CLI."""

from conversation_manager.manager import ConversationManager, EndResult, new_conversation_id
from conversation_manager.recovery import ReplayReport, replay_pending

__all__ = ["ConversationManager", "EndResult", "ReplayReport", "new_conversation_id", "replay_pending"]
