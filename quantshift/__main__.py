import sys

from quantshift.cli import main

sys.exit(main())
