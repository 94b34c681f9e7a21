"""Kernel-facing half of nsplane: namespaces, veths, addresses, routes,
iptables and conntrack.

It knows plain data (a Service port, endpoint IPs, a pod's address), never the
Kubernetes API or the store. Rendering is pure; the modules that touch the
kernel are thin and are tested on the real kernel in throwaway namespaces.
"""
