import sys

from lab.exchanges.server import main

sys.exit(main())
