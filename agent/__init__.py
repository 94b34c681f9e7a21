"""The cluster side of nsplane.

The server role (API server, SQLite store, controllers) and the node role
(kubelet-style pod runtime and kube-proxy-style proxier) live here, with the
`nsplane` command line. This package drives `dataplane` and `dns`; they never
import it.
"""
