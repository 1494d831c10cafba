import sys

from conversation_manager.cli import main

sys.exit(main(sys.argv[1:]))
