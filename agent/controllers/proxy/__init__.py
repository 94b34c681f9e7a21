"""The proxy machinery Ingress and Gateway API controllers share: real nginx
(Debian's nginx-light) run as pods behind a LoadBalancer Service, driven by a
configuration rendered from plain data.

- `model`: ProxyConfig / Server / Route / Action / Upstream, the neutral
  description of what the proxy does (no Kubernetes, no nginx syntax).
- `nginx.render(config, certs_dir) -> str`: the pure nginx.conf renderer.
- `deploy`: a `ProxyInstance(name)` as objects in namespace nsplane-ingress
  (Deployment, LoadBalancer Service, ConfigMap with nginx.conf, Secret with
  the PEMs); `ensure(registry, inst)`, `publish(registry, inst, config)`
  (changes reach nginx as a graceful reload, ~1 s), `address(store, inst)`,
  `remove(registry, inst)`.

A controller: `deploy.ensure` once, then on every change build a ProxyConfig
from its objects, `deploy.publish` it, and copy `deploy.address` into its
objects' status (watch `services` so the address, which the load-balancer
controller writes into the instance's Service, reaches your objects; set
ProxyConfig.tls_ports for ports that speak TLS). One instance per controller (the Ingress controller's is
`nsplane-ingress-nginx`); another controller makes its own instance, with
its own pods and address, rather than sharing a config file.
"""
