"""The workloads the integration tests apply, built by functions instead of
copied from module to module.

Most modules run the same few objects: an agnhost `netexec` Deployment (the
echo server of the Kubernetes e2e tests: /hostname, /clientip, /echo, and UDP
when asked), an nginx Deployment, a Service selecting one of them, a client
pod that sleeps. `deployment()`, `pod()` and `service()` build them and
return YAML text, which a test applies exactly as a user's file: through
`nsplane apply -f -` or real `kubectl apply -f -`. `documents()` joins
several into one multi-document stream.

    documents(deployment("echo", image=AGNHOST, replicas=3, args=netexec(udp_port=8081),
                         ports=[("http", 8080)], readiness=("/healthz", "http")),
              service("echo", selector={"app": "echo"},
                      ports=[{"name": "http", "port": 80, "targetPort": "http"}]))

Use these for the workloads a test stands on. Keep the YAML itself in the
test when the manifest is what the test is about, so that the reader sees
exactly what the user wrote: the Service chapter's own files (vagrant/demo,
read by `demo()` and applied unchanged), input that must be rejected
(unknown fields, out-of-range values), and kinds these functions do not make
(hand-written EndpointSlices).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
NGINX = "nginx"
CURL = "curlimages/curl"


def netexec(http_port: int = 8080, udp_port: int | None = None) -> list[str]:
    """agnhost's arguments for its HTTP (and, with `udp_port`, UDP) echo server."""
    args = ["netexec", f"--http-port={http_port}"]
    if udp_port is not None:
        args.append(f"--udp-port={udp_port}")
    return args


def deployment(name: str, *, image: str = NGINX, replicas: int = 1, args: Sequence[str] | None = None,
               ports: Iterable[int | tuple[str, int]] = (), readiness: tuple[str, int | str] | None = None,
               labels: dict | None = None, node: str | None = None, container: str | None = None) -> str:
    """An apps/v1 Deployment of one container (named `container`, default
    `name`) whose pods carry `labels` (default app=<name>), which are also
    its selector. `ports` are container ports: 80, or ("http", 8080) for a
    named one. `readiness` is an HTTP GET probe (path, port) every second.
    `node` pins the pods with a kubernetes.io/hostname nodeSelector."""
    labels = labels or {"app": name}
    spec: dict = {}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    spec["containers"] = [_container(container or name, image, None, args, ports, readiness)]
    return _dump({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    })


def pod(name: str, *, image: str = CURL, command: Sequence[str] | None = None, args: Sequence[str] | None = None,
        readiness: tuple[str, int | str] | None = None, labels: dict | None = None,
        node_name: str | None = None, container: str | None = None) -> str:
    """A bare v1 Pod of one container (default name: `name`), bound to
    `node_name` when given (no scheduling), with `labels` when given."""
    metadata: dict = {"name": name}
    if labels:
        metadata["labels"] = labels
    spec: dict = {}
    if node_name:
        spec["nodeName"] = node_name
    spec["containers"] = [_container(container or name, image, command, args, (), readiness)]
    return _dump({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})


def service(name: str, *, selector: dict | None = None, ports: Sequence[dict] = (), **spec) -> str:
    """A v1 Service. `ports` are ServicePorts as in YAML ({"port": 80,
    "targetPort": "http", ...}); any other spec field is passed by its
    Kubernetes name (type="NodePort", clusterIP="None",
    externalTrafficPolicy="Local", ...). No `selector`: a selector-less
    Service."""
    body: dict = dict(spec)
    if selector is not None:
        body["selector"] = selector
    if ports:
        body["ports"] = [dict(p) for p in ports]
    return _dump({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body})


def coredns_corefile(corefile: str) -> str:
    """ConfigMap kube-system/coredns holding `corefile`, as kubeadm names it."""
    return _dump({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "coredns", "namespace": "kube-system"},
                  "data": {"Corefile": corefile}})


def demo(filename: str) -> str:
    """One of the Service chapter's manifests (vagrant/demo/), unchanged."""
    with open(os.path.join(REPO, "vagrant", "demo", filename)) as f:
        return f.read()


def documents(*docs: str) -> str:
    """Several manifests as one multi-document YAML stream."""
    return "---\n".join(docs)


def _container(name: str, image: str, command, args, ports, readiness) -> dict:
    out: dict = {"name": name, "image": image}
    if command:
        out["command"] = list(command)
    if args:
        out["args"] = list(args)
    if ports:
        out["ports"] = [{"containerPort": p} if isinstance(p, int) else {"name": p[0], "containerPort": p[1]}
                        for p in ports]
    if readiness:
        path, port = readiness
        out["readinessProbe"] = {"httpGet": {"path": path, "port": port}, "periodSeconds": 1}
    return out


class _PlainDumper(yaml.SafeDumper):
    """Writes a shared dict out twice rather than as a YAML anchor and alias."""

    def ignore_aliases(self, data) -> bool:
        return True


def _dump(obj: dict) -> str:
    return yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)
