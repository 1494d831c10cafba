from conversation_manager.cli import entry

entry()
