import sys

from tests.multihost.run import main

sys.exit(main())
