"""`python -m agent.controlplane`."""
from agent.controlplane.main import main

raise SystemExit(main())
