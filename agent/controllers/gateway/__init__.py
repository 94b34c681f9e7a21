"""The Gateway API controller (gateway.networking.k8s.io v1, standard
channel): GatewayClasses naming our controllerName, their Gateways and the
HTTPRoutes attached to them, judged as the spec says and programmed on
nsplane's nginx proxy.

Pure modules: `hostnames` (wildcards, intersection), `precedence` (match
order), `grants` (ReferenceGrant), `listeners` (listener and Gateway
conditions), `rules` (rule checks, backend resolution), `attachment`
(parentRefs, route status), `plan` (everything together, per Gateway).
"""
