"""Ingress (networking.k8s.io/v1) on nsplane's nginx proxy: `routes` turns
Ingresses, Services and TLS Secrets into the proxy's configuration (pure),
`controller` watches them, publishes it and writes the Ingresses' status."""
