"""Prometheus text metrics, under CoreDNS's names so existing dashboards and docs apply.

Exported (labels as CoreDNS's, `view` empty):
  coredns_dns_requests_total{server,zone,view,proto,family,type}
  coredns_dns_responses_total{server,zone,view,rcode,plugin}
  coredns_dns_request_duration_seconds{server,zone,view}      histogram, CoreDNS buckets
  coredns_forward_requests_total{to}, coredns_forward_responses_total{to,rcode}
  coredns_forward_max_concurrent_rejects_total
  coredns_forward_errors_total{to,error}                     ours: timeout|network|tcp
  coredns_cache_hits_total{server,type,zones,view}, coredns_cache_misses_total{...},
  coredns_cache_entries{server,type,zones,view}               forwarded answers only
  coredns_panics_total                                        handler exceptions caught

Counting happens under one short lock per query; rendering copies the
counters under the same lock.
"""

from __future__ import annotations

import threading

from dnslib import RCODE

from dns.wire import qtype_name

BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))  # plugin.TimeBuckets: 0.25 ms .. 8 s


def _labels(**kv) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


class Metrics:
    def __init__(self, server: str = "dns://:53") -> None:
        self.server = server
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = {}
        self.responses: dict[tuple, int] = {}
        self.durations: dict[str, list] = {}   # zone -> [bucket counts..., count, sum]
        self.panics = 0

    def observe(self, zone: str, proto: str, family: int, qtype: int, rcode: int,
                plugin: str, seconds: float) -> None:
        with self._lock:
            key = (zone, proto, family, qtype)
            self.requests[key] = self.requests.get(key, 0) + 1
            rkey = (zone, rcode, plugin)
            self.responses[rkey] = self.responses.get(rkey, 0) + 1
            hist = self.durations.get(zone)
            if hist is None:
                hist = self.durations[zone] = [0] * (len(BUCKETS) + 2)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
                    break
            hist[-2] += 1
            hist[-1] += seconds

    def panic(self) -> None:
        with self._lock:
            self.panics += 1

    def render(self, forwarder=None) -> str:
        with self._lock:
            requests, responses = dict(self.requests), dict(self.responses)
            durations = {z: list(h) for z, h in self.durations.items()}
            panics = self.panics
        srv = self.server
        out = ["# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.",
               "# TYPE coredns_dns_requests_total counter"]
        for (zone, proto, family, qtype), n in sorted(requests.items()):
            out.append("coredns_dns_requests_total" + _labels(server=srv, zone=zone, view="", proto=proto,
                                                              family=family, type=qtype_name(qtype)) + f" {n}")
        out += ["# HELP coredns_dns_responses_total Counter of response status codes.",
                "# TYPE coredns_dns_responses_total counter"]
        for (zone, rcode, plugin), n in sorted(responses.items()):
            out.append("coredns_dns_responses_total" + _labels(server=srv, zone=zone, view="",
                                                               rcode=RCODE.get(rcode, str(rcode)),
                                                               plugin=plugin) + f" {n}")
        out += ["# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.",
                "# TYPE coredns_dns_request_duration_seconds histogram"]
        for zone, hist in sorted(durations.items()):
            running = 0
            for bound, n in zip(BUCKETS, hist):
                running += n
                out.append("coredns_dns_request_duration_seconds_bucket"
                           + _labels(server=srv, zone=zone, view="", le=f"{bound:g}") + f" {running}")
            out.append("coredns_dns_request_duration_seconds_bucket"
                       + _labels(server=srv, zone=zone, view="", le="+Inf") + f" {hist[-2]}")
            out.append("coredns_dns_request_duration_seconds_count" + _labels(server=srv, zone=zone, view="")
                       + f" {hist[-2]}")
            out.append("coredns_dns_request_duration_seconds_sum" + _labels(server=srv, zone=zone, view="")
                       + f" {hist[-1]:.6f}")
        out += ["# HELP coredns_panics_total A metrics that counts the number of panics.",
                "# TYPE coredns_panics_total counter", f"coredns_panics_total {panics}"]
        if forwarder is not None:
            out += _forward_lines(srv, forwarder)
        return "\n".join(out) + "\n"


def _forward_lines(srv: str, fwd) -> list[str]:
    st = fwd.stats
    out = ["# HELP coredns_forward_requests_total Counter of requests made per upstream.",
           "# TYPE coredns_forward_requests_total counter"]
    out += [f'coredns_forward_requests_total{{to="{to}"}} {n}' for to, n in sorted(st.requests.items())]
    out += ["# HELP coredns_forward_responses_total Counter of responses received per upstream.",
            "# TYPE coredns_forward_responses_total counter"]
    out += [f'coredns_forward_responses_total{{to="{to}",rcode="{RCODE.get(rc, rc)}"}} {n}'
            for (to, rc), n in sorted(st.responses.items())]
    out += ["# HELP coredns_forward_errors_total Counter of failed upstream queries (timeout, network, tcp).",
            "# TYPE coredns_forward_errors_total counter"]
    out += [f'coredns_forward_errors_total{{to="{to}",error="{why}"}} {n}'
            for (to, why), n in sorted(st.errors.items())]
    out += ["# HELP coredns_forward_max_concurrent_rejects_total Counter of the number of queries rejected because the concurrent queries were at maximum.",
            "# TYPE coredns_forward_max_concurrent_rejects_total counter",
            f"coredns_forward_max_concurrent_rejects_total {st.rejects}"]
    zone = _labels(server=srv, zones=".", view="")
    out += ["# HELP coredns_cache_hits_total The count of cache hits.", "# TYPE coredns_cache_hits_total counter"]
    out += ["coredns_cache_hits_total" + _labels(server=srv, type=kind, zones=".", view="")
            + f" {st.cache_hits.get(kind, 0)}" for kind in ("denial", "success")]
    out += ["# HELP coredns_cache_misses_total The count of cache misses.",
            "# TYPE coredns_cache_misses_total counter", f"coredns_cache_misses_total{zone} {st.cache_misses}",
            "# HELP coredns_cache_entries The number of elements in the cache.",
            "# TYPE coredns_cache_entries gauge",
            "coredns_cache_entries" + _labels(server=srv, type="success", zones=".", view="") + f" {len(fwd.cache)}"]
    return out
