import sys

from lab.pve.server import main

sys.exit(main())
