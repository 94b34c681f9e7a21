"""`python -m agent.node`."""
from agent.node.nodeagent import main

raise SystemExit(main())
