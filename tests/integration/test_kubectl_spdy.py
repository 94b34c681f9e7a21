"""exec and attach with an old kubectl that only speaks SPDY/3.1 (Debian 12's
kubernetes-client, 1.20): exec through the Service, the exit code, stdin,
a tty with its window size, and `run --rm -i`. The binary comes from
NSPLANE_OLD_KUBECTL (default: the unpacked .deb under /tmp/nsr/k120);
kubectl runs in the cluster's host namespace with KUBECONFIG set to a file
in the state dir."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from dataplane import netns
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import deployment, documents, service

OLD_KUBECTL = os.environ.get("NSPLANE_OLD_KUBECTL", "/tmp/nsr/k120/usr/bin/kubectl")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    not os.access(OLD_KUBECTL, os.X_OK),
    reason=f"no old (SPDY-only) kubectl at {OLD_KUBECTL}: `apt-get download kubernetes-client` and "
           "`dpkg-deb -x` it under /tmp/nsr/k120, or set NSPLANE_OLD_KUBECTL")]

WEB = documents(deployment("web", replicas=1), service("web", selector={"app": "web"}, ports=[{"port": 80}]))


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("spdy"))) as tc:
        tc.apply(WEB)
        yield tc


@pytest.fixture(scope="module")
def pod(c):
    c.wait_ready("app=web", 1, timeout=60)
    name = c.get("pods", "-l", "app=web")["items"][0]["metadata"]["name"]
    # cluster DNS comes up beside the pod: wait (through `nsplane exec`) until the name answers
    c.wait(lambda: "Welcome to nginx!" in c.exec(name, "curl", "-s", "-m", "2", "http://web").stdout,
           timeout=60, what="http://web from the pod")
    return name


def argv(c, *args):
    return ["nsenter", f"--net={netns.path(c.cfg.host_netns)}", "--", OLD_KUBECTL, *args]


def env(c):
    return dict(os.environ, KUBECONFIG=c.kubeconfig())


def old(c, *args, input=None, timeout=60):
    return subprocess.run(argv(c, *args), check=False, capture_output=True, text=True, env=env(c), input=input,
                          timeout=timeout, cwd=REPO)


def test_it_is_an_spdy_only_kubectl():
    out = subprocess.run([OLD_KUBECTL, "version", "--client", "-o", "json"], check=True, capture_output=True, text=True)
    minor = int(json.loads(out.stdout)["clientVersion"]["minor"].rstrip("+"))
    assert minor < 30, "this kubectl speaks WebSocket already; the test would not exercise SPDY"


def test_exec_curl_through_the_service(c, pod):
    r = old(c, "exec", pod, "--", "curl", "-s", "http://web")
    assert r.returncode == 0, r.stderr
    assert "Welcome to nginx!" in r.stdout


def test_exec_exit_code_stdout_and_stderr(c, pod):
    r = old(c, "exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout) == (3, "out\n")
    assert "err\n" in r.stderr and "command terminated with exit code 3" in r.stderr


def test_exec_i_with_stdin(c, pod):
    r = old(c, "exec", "-i", pod, "--", "sh", "-c", "cat; echo done-$(hostname)", input="through stdin\n")
    assert (r.returncode, r.stdout) == (0, f"through stdin\ndone-{pod}\n"), r.stderr


def test_exec_it_on_a_pty_with_resize(c, pod):
    out, code = drive_pty(argv(c, "exec", "-it", pod, "--", "sh"), env(c), rows=33, cols=101,
                          keys=b"stty size; echo tty-$((40+2)); exit 4\r")
    assert "33 101" in out and "tty-42" in out, out
    assert code == 4 and "command terminated with exit code 4" in out, out


def test_run_rm_i_attaches_and_removes_the_pod(c, pod):
    r = old(c, "run", "tmp", "--rm", "-i", "--image=curlimages/curl", "--restart=Never", "--", "sh",
            input="echo hi-from-$(hostname)\ncurl -s http://web\n", timeout=90)
    assert "hi-from-tmp" in r.stdout and "Welcome to nginx!" in r.stdout, r.stderr
    assert 'pod "tmp" deleted' in r.stdout
    assert c.kubectl("get", "pod", "tmp", check=False).returncode != 0


def drive_pty(cmd, environ, rows, cols, keys, limit=45.0):
    """Run cmd on a new pty of the given size; type `keys` once it printed
    something (the remote shell's prompt). Returns (output, exit code)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=environ, cwd=REPO,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out, typed = b"", False
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:      # EIO: every writer is gone
                    break
                if not data:
                    break
                out += data
            if not typed and out:
                time.sleep(0.3)
                os.write(master, keys)
                typed = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return out.decode(errors="replace"), code
