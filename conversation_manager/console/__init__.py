"""The operator console: calls, live calls and stats in a browser, over the same store as the CLI."""

from conversation_manager.console.app import build_app
from conversation_manager.console.server import serve

__all__ = ["build_app", "serve"]
