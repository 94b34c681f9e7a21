#!/usr/bin/env bash
# Set up a Debian 12 / Ubuntu 24.04 machine (or VM) for nsplane, as root.
# Idempotent: a second run changes nothing.
#
#   bash vagrant/provision.sh            # install only
#   bash vagrant/provision.sh demo       # install, bring the cluster up, apply the demo
#   bash vagrant/provision.sh test       # install, run the whole test suite
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NSPLANE_VENV:-/opt/nsplane/venv}"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh must run as root (try: sudo bash $0 $*)" >&2
  exit 1
fi

packages=(iproute2 iptables conntrack curl dnsutils python3 python3-venv python3-pip util-linux procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# python-iptables (libiptc) drives the legacy backend: make `iptables` show our rules.
for alt in iptables ip6tables; do
  if update-alternatives --query "$alt" >/dev/null 2>&1; then
    cur="$(update-alternatives --query "$alt" | awk '/^Value:/{print $2}')"
    want="/usr/sbin/${alt}-legacy"
    if [ "$cur" != "$want" ] && [ -x "$want" ]; then
      say "switching $alt to legacy"
      update-alternatives --set "$alt" "$want" >/dev/null
    fi
  fi
done

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv"
  /usr/bin/python3 -m venv "$venv"
fi
stamp="$venv/.nsplane-installed"
src_hash="$(sha256sum < "$here/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$src_hash:$here" ]; then
  say "installing nsplane into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
  echo "$src_hash:$here" > "$stamp"
fi
if [ "$(readlink -f /usr/local/bin/nsplane 2>/dev/null)" != "$(readlink -f "$venv/bin/nsplane")" ]; then
  ln -sf "$venv/bin/nsplane" /usr/local/bin/nsplane
fi

case "${1:-}" in
  demo)
    nsplane up
    nsplane apply -f "$here/vagrant/demo/"
    echo
    echo "Waiting for the web pods to be Ready..."
    for _ in $(seq 1 150); do
      ready="$(nsplane get deploy web -o json 2>/dev/null | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get("status",{}).get("readyReplicas",0))' 2>/dev/null || echo 0)"
      [ "$ready" = "3" ] && break
      sleep 0.2
    done
    nsplane get svc
    nsplane get endpoints web
    nsplane get pods -o wide
    ip="$(nsplane get svc web -o json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["spec"]["clusterIP"])')"
    echo
    echo "Next: call the Service from a pod, as the chapter does:"
    echo "  nsplane run tmp --image=curlimages/curl -- sleep 3600"
    echo "  nsplane exec tmp -- curl -s http://$ip | head -1"
    ;;
  test)
    cd "$here"
    exec "$venv/bin/python" -m pytest -q tests
    ;;
  "") ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
