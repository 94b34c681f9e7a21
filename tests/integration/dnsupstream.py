"""A test upstream DNS server in a pod's network namespace, for the Corefile tests' `forward`.

`upstream(c, pod, suffix, ip)` runs a dnslib server on <pod IP>:5353 inside the
pod's network namespace (our own namespace, so traffic stays in the cluster):
it answers A `ip` for names ending in `suffix` and NXDOMAIN for the rest, and
records every name it is asked. It yields (pod IP, path of the names file)
and always stops the process and removes the file.
"""
import contextlib
import os
import subprocess
import sys
import tempfile

PORT = 5353

SERVER = r"""
import sys, time
from dnslib import RR, QTYPE, A
from dnslib.server import DNSServer, BaseResolver, DNSLogger
class R(BaseResolver):
    def resolve(self, request, handler):
        with open(sys.argv[3], "a") as f:
            f.write(str(request.q.qname) + "\n")
        reply = request.reply()
        if str(request.q.qname).lower().endswith(sys.argv[4]):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(sys.argv[5]), ttl=60))
        else:
            reply.header.rcode = 3
        return reply
s = DNSServer(R(), address=sys.argv[1], port=int(sys.argv[2]), logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
s.start_thread()
time.sleep(600)
"""


@contextlib.contextmanager
def upstream(c, pod: str, suffix: str, ip: str):
    pod_ip = c.get("pod", pod)["status"]["podIP"]
    seen = tempfile.NamedTemporaryFile(prefix="nsplane-upstream-", delete=False).name
    proc = subprocess.Popen(["ip", "netns", "exec", c.pod_netns(pod), sys.executable, "-c", SERVER,
                             pod_ip, str(PORT), seen, suffix, ip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield pod_ip, seen
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.unlink(seen)
