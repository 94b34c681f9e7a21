"""`python -m agent.coredns`."""
from agent.coredns.main import main

raise SystemExit(main())
