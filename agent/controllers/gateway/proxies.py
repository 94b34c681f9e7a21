"""One nginx proxy per Gateway, run by the proxy machinery
(agent/controllers/proxy/deploy.py) in namespace nsplane-ingress: a
Deployment, a ConfigMap, a certificates Secret and a LoadBalancer Service
named `nsplane-gw-<namespace>-<name>` (cut and hashed when long), whose
ports are the Gateway's listener ports. Why one per Gateway: each Gateway
has its own addresses and may use any port, as on a real cluster (two
Gateways may both listen on :80 with a catch-all listener); a shared
proxy would make them conflict.

`GatewayProxies` is the controller's only door to them: apply, address,
remove, the instances that exist, and `rejected`: a configuration this
machine's nginx -t refused is not published (deploy.publish), the proxy
keeps the previous one and the Gateway says why (Programmed False)."""
from __future__ import annotations

import hashlib

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.proxy import deploy
from agent.controllers.proxy.model import ProxyConfig

PREFIX = "nsplane-gw-"


def instance_name(ns: str, name: str) -> str:
    full = f"{PREFIX}{ns}-{name}"
    if len(full) <= 47:
        return full
    digest = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()[:8]
    return f"{full[:38]}-{digest}"


def instance(ns: str, name: str, ports: list[int]) -> deploy.ProxyInstance:
    return deploy.ProxyInstance(name=instance_name(ns, name),
                                ports=tuple((f"p{p}", p) for p in sorted(set(ports))))


class GatewayProxies:
    def __init__(self, store, registry):
        self.store, self.registry = store, registry
        self._rejected: dict[str, str] = {}      # instance -> nginx -t's complaint about its latest config

    def apply(self, ns: str, name: str, ports: list[int], config: ProxyConfig,
              wanted_ip: str | None = None) -> tuple[str | None, str | None]:
        """Make or update the Gateway's proxy: (its address or None while
        pending, why the requested `wanted_ip` cannot be had or None)."""
        inst = instance(ns, name, ports)
        deploy.ensure(self.registry, inst)
        self._ports(inst)
        problem = self._load_balancer_ip(inst, wanted_ip)
        try:
            deploy.publish(self.registry, inst, config)
            self._rejected.pop(inst.name, None)
        except deploy.ConfigRejected as e:
            self._rejected[inst.name] = e.message
        addr = deploy.address(self.store, inst)
        if wanted_ip and addr != wanted_ip:
            return None, problem
        return addr, problem

    def rejected(self, ns: str, name: str) -> str | None:
        """Why nginx -t refused the Gateway's latest configuration (None: it took it)."""
        return self._rejected.get(instance_name(ns, name))

    def _load_balancer_ip(self, inst: deploy.ProxyInstance, ip: str | None) -> str | None:
        """spec.addresses' IP as the Service's loadBalancerIP (the pool's
        admission says when it is outside the pool or taken)."""
        kind = BY_RESOURCE["services"]
        cur = self.registry.get(kind, inst.namespace, inst.name)
        if (cur["spec"].get("loadBalancerIP") or None) == ip:
            return None
        spec = {k: v for k, v in cur["spec"].items() if k != "loadBalancerIP"}
        if ip:
            spec["loadBalancerIP"] = ip
        try:
            self.registry.update(kind, inst.namespace, inst.name, {**cur, "spec": spec})
        except APIError as e:
            return f"address {ip} cannot be used: {e.message}"
        return None

    def _ports(self, inst: deploy.ProxyInstance) -> None:
        """A listener port added or removed: the Service and the pods follow."""
        for resource, want in (("services", deploy.service(inst)), ("deployments", deploy.deployment(inst))):
            kind = BY_RESOURCE[resource]
            cur = self.registry.get(kind, inst.namespace, inst.name)
            if resource == "services":
                have = [(p.get("name"), p.get("port")) for p in cur["spec"].get("ports") or ()]
                if have == [(p["name"], p["port"]) for p in want["spec"]["ports"]]:
                    return
                old = {p.get("name"): p for p in cur["spec"]["ports"]}
                ports = [{**old.get(p["name"], {}), **p} for p in want["spec"]["ports"]]
                self.registry.update(kind, inst.namespace, inst.name,
                                     {**cur, "spec": {**cur["spec"], "ports": ports}})
            else:
                spec = cur["spec"]
                spec["template"]["spec"]["containers"][0]["ports"] = \
                    want["spec"]["template"]["spec"]["containers"][0]["ports"]
                self.registry.update(kind, inst.namespace, inst.name, cur)

    def ready(self, ns: str, name: str) -> bool:
        """Has the Gateway's proxy a ready pod (its Deployment says so)?"""
        try:
            d = self.store.get("deployments", deploy.NAMESPACE, instance_name(ns, name))
        except NotFound:
            return False
        return (d.get("status") or {}).get("readyReplicas", 0) > 0

    def running(self) -> list[str]:
        """Names of the Gateway proxies that exist."""
        return sorted(d["metadata"]["name"] for d in self.store.list("deployments", deploy.NAMESPACE)[0]
                      if d["metadata"]["name"].startswith(PREFIX))

    def remove(self, inst_name: str) -> None:
        deploy.remove(self.registry, deploy.ProxyInstance(name=inst_name))
