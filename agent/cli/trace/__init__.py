"""`nsplane trace POD URL`: one real connection from a pod, and the path the
kernel recorded for it — DNS answers, the node's rules whose packet counters
it moved, its conntrack entry (the endpoint chosen, DNAT, masquerade) and who
answered. path.py is pure; probe.py is the edge; command.py prints.
"""
