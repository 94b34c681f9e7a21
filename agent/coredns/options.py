"""NSPLANE_DNS_KUBERNETES_OPTIONS: the kubernetes block's options from the environment.

A test and debug hook, read by the DNS pod until a Corefile is: the
kube-system/coredns Corefile, when there is one, supersedes it. The value is
a JSON object whose keys are the block's options; keys left out keep
kubeadm's values (dns.records.Config's defaults):

    {"zones": ["cluster.local", "10.96.0.0/12"], "pods": "verified",
     "namespaces": ["default"], "endpoint_pod_names": true, "noendpoints": false,
     "ignore_empty_service": true, "fallthrough": ["in-addr.arpa"], "ttl": 5}

`zones` is the block's zone list (one non-reverse zone, the cluster domain,
then reverse zones as names or CIDRs); `fallthrough` is null (off), [] (every
zone) or a list of zones; the rest are as in CoreDNS's README.
"""
from __future__ import annotations

import json

from dns.names import is_reverse, labels_of, reverse_zones_of

ENV = "NSPLANE_DNS_KUBERNETES_OPTIONS"
FLAGS = ("endpoint_pod_names", "noendpoints", "ignore_empty_service")
KEYS = ("zones", "pods", "namespaces", "fallthrough", "ttl") + FLAGS


class OptionsError(ValueError):
    """The hook's value cannot be used; the message names the key and the fix."""


def _zone_list(key: str, value) -> tuple:
    if not isinstance(value, list) or not all(isinstance(z, str) and z for z in value):
        raise OptionsError(f"{ENV}: {key} must be a list of zone names or CIDRs, got {value!r}")
    out: list = []
    for zone in value:
        if "/" in zone:
            try:
                out.extend(reverse_zones_of(zone))
            except ValueError:
                raise OptionsError(f"{ENV}: {key}: {zone!r} is not a CIDR; write e.g. 10.0.0.0/24") from None
        else:
            out.append(labels_of(zone))
    return tuple(dict.fromkeys(out))


def options_from_json(text: str) -> dict:
    """The hook's JSON -> keyword arguments for dns.records.Config (validated there)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise OptionsError(f"{ENV}: not JSON ({exc}); write an object such as {{\"pods\": \"verified\"}}") from None
    if not isinstance(raw, dict):
        raise OptionsError(f"{ENV}: must be a JSON object of options, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise OptionsError(f"{ENV}: unknown property {unknown[0]!r}; known: {', '.join(KEYS)}")
    out: dict = {}
    if "zones" in raw:
        zones = _zone_list("zones", raw["zones"])
        forward = [z for z in zones if not is_reverse(z)]
        if len(forward) != 1:
            raise OptionsError(f"{ENV}: zones must hold exactly one non-reverse zone (the cluster domain), "
                               f"got {['.'.join(z) for z in forward]}")
        out["domain"] = forward[0]
        out["reverse_zones"] = tuple(z for z in zones if is_reverse(z))
    if "pods" in raw:
        out["pods"] = raw["pods"]
    if "namespaces" in raw:
        names = raw["namespaces"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise OptionsError(f"{ENV}: namespaces must be a non-empty list of namespace names")
        out["namespaces"] = frozenset(names)
    for flag in FLAGS:
        if flag in raw:
            if not isinstance(raw[flag], bool):
                raise OptionsError(f"{ENV}: {flag} must be true or false, got {raw[flag]!r}")
            out[flag] = raw[flag]
    if "fallthrough" in raw:
        value = raw["fallthrough"]
        out["fallthrough"] = None if value is None else _zone_list("fallthrough", value)
    if "ttl" in raw:
        if not isinstance(raw["ttl"], int) or isinstance(raw["ttl"], bool):
            raise OptionsError(f"{ENV}: ttl must be a whole number of seconds (0-3600), got {raw['ttl']!r}")
        out["ttl"] = raw["ttl"]
    return out
