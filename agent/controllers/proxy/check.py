"""`nginx -t` of a configuration before it is published, so a configuration
nginx would refuse never reaches the proxy pods (which would keep serving
the previous one, silently) and the controller can say so on its objects.

The controller runs this machine's nginx (Debian's nginx-light, the same
binary the offline `nginx` stand-in runs in the pods; provision.sh installs
it) on the rendered text in a throwaway prefix: the configuration rendered
with its certificates and temporary paths inside that directory, `-p` and
`-e` pointing there too, so the test touches nothing else. `nginx -t` does
not bind the listen ports. No nginx on the machine: nothing is checked
(`available()` says so) and the pods' own `nginx -t` before each reload
remains the only guard.

`test(config, pems)` -> None when nginx accepts it, else nginx's error with
the temporary paths spelled as the pods see them (CONF_DIR/nginx.conf,
CERTS_DIR), so the message names the line of the published file.
"""
from __future__ import annotations

import os
import subprocess
import tempfile

from agent.controllers.proxy import nginx
from agent.controllers.proxy.model import ProxyConfig

NGINX = "/usr/sbin/nginx"
TIMEOUT = 30


def available(binary: str = NGINX) -> bool:
    return os.access(binary, os.X_OK)


def test(config: ProxyConfig, pems: dict[str, str], conf_path: str, certs_dir: str,
         binary: str = NGINX) -> str | None:
    """nginx's complaint about `config` with certificates `pems` (name -> PEM), or None."""
    if not available(binary):
        return None
    with tempfile.TemporaryDirectory(prefix="nsplane-nginx-t-") as tmp:
        certs = os.path.join(tmp, "certs")
        os.mkdir(certs)
        for name, pem in pems.items():
            with open(os.path.join(certs, f"{name}.pem"), "w") as f:
                f.write(pem)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx.render(config, certs, run_dir=tmp))
        try:
            r = subprocess.run([binary, "-t", "-q", "-p", tmp + "/", "-e", "stderr", "-c", conf],
                               capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return f"nginx -t did not finish within {TIMEOUT}s"
    if r.returncode == 0:
        return None
    return explain(r.stderr, tmp, conf_path, certs_dir)


def explain(stderr: str, tmp: str, conf_path: str, certs_dir: str) -> str:
    """nginx -t's [emerg] lines without timestamps/pids, temporary paths as the pods' paths."""
    lines = []
    for line in stderr.splitlines():
        if "[emerg]" in line or "[alert]" in line or "[crit]" in line:
            line = line.split("] ", 1)[1] if "] " in line else line
            line = line.split(": ", 1)[1] if line.split(": ", 1)[0].replace("#", "").isdigit() else line
            lines.append(line)
    text = "; ".join(lines) or stderr.strip() or "nginx -t failed"
    return text.replace(os.path.join(tmp, "nginx.conf"), conf_path).replace(os.path.join(tmp, "certs"), certs_dir) \
        .replace(tmp, "/tmp")
