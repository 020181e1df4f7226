import sys

from quantshift_bot.cli import main

sys.exit(main())
