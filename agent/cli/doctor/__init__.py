"""`nsplane doctor svc/NAME` and `nsplane explain svc/NAME`: Kubernetes'
"Debug Services" guide checked top to bottom, and a Service's kube-proxy
rules read back from a node and annotated.

checks.py (pure) judges collected facts; rules.py (pure) finds, checks and
annotates a Service's rules in iptables-save output; facts.py is the edge
that reads the API, the pods' sockets, the nodes' rules and DNS; command.py
parses the arguments and prints.
"""
