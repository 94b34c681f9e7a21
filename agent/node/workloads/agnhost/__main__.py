"""`python -m agent.node.workloads.agnhost <subcommand> ...`: the image's /agnhost."""

import sys

from agent.node.workloads.agnhost import main

sys.exit(main())
