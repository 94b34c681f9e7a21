#!/usr/bin/env bash
# Set up a Debian 12 / Ubuntu 24.04 machine (or VM) for nsplane, as root.
# Idempotent: a second run changes nothing (`check` proves it: it exits 1 and
# says what it would do if anything is left to do).
#
#   bash vagrant/provision.sh            # install only
#   bash vagrant/provision.sh demo       # install, bring the cluster up, apply the demo
#   bash vagrant/provision.sh test       # install, run the whole test suite
#   bash vagrant/provision.sh check      # change nothing; exit 1 if an install step would change something
#   bash vagrant/provision.sh vm         # the Vagrantfile's: host mode (this VM is the node) + systemd units
#
# vm mode reads (the Vagrantfile sets them): NSPLANE_IP (this VM's private-network
# address; its interface becomes the node's), NSPLANE_ROLE (server | agent),
# NSPLANE_SERVER_IP (agents: the server VM's address), NSPLANE_LB_POOL (optional),
# NSPLANE_SHARE (a folder every VM sees, default /vagrant/.nsplane: the node token).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NSPLANE_VENV:-/opt/nsplane/venv}"
mode="${1:-}"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

case "$mode" in ""|demo|test|check|vm) ;; *) echo "usage: $0 [demo|test|check|vm]" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh must run as root (try: sudo bash $0 $*)" >&2
  exit 1
fi

pending=0
# change WHAT COMMAND...: run COMMAND announced as WHAT; in check mode only report it.
change() {
  pending=$((pending + 1))
  if [ "$mode" = check ]; then echo "would: $1"; return 0; fi
  say "$1"; shift; "$@"
}

# ---- packages -----------------------------------------------------------
packages=(iproute2 iptables nftables conntrack curl netcat-openbsd dnsutils dnsperf python3 python3-venv python3-pip util-linux
          procps openssl crun runc skopeo umoci docker-registry busybox-static)   # containers: runtime, images, local registry
# nginx: the Ingress proxy's program, run inside its pods (never as the host's service);
# Debian 12's smallest build, or plain nginx where a release has no nginx-light (Ubuntu 24.04).
if apt-cache show nginx-light >/dev/null 2>&1 || ! apt-cache show nginx >/dev/null 2>&1; then
  packages+=(nginx-light)
else
  packages+=(nginx)
fi
if ! command -v kubectl >/dev/null 2>&1 && apt-cache show kubernetes-client >/dev/null 2>&1; then
  packages+=(kubernetes-client)      # Debian's kubectl; an existing kubectl is never replaced
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ "${#missing[@]}" -gt 0 ]; then
  change "installing ${missing[*]}" install_packages "${missing[@]}"
fi

# Debian starts nginx's own service on install; it would hold the machine's :80.
# The Ingress proxy runs nginx in pods, so the host service stays stopped and disabled.
if [ -d /run/systemd/system ]; then
  if systemctl is-enabled -q nginx.service 2>/dev/null || systemctl is-active -q nginx.service 2>/dev/null; then
    change "stopping and disabling the host's nginx service (nginx runs in the Ingress proxy's pods)" \
      systemctl disable --now -q nginx.service
  fi
elif [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
  change "stopping the host's nginx service (nginx runs in the Ingress proxy's pods)" /etc/init.d/nginx stop
fi

# python-iptables (libiptc) drives the legacy backend: make `iptables` show our rules.
for alt in iptables ip6tables; do
  if update-alternatives --query "$alt" >/dev/null 2>&1; then
    cur="$(update-alternatives --query "$alt" | awk '/^Value:/{print $2}')"
    want="/usr/sbin/${alt}-legacy"
    if [ "$cur" != "$want" ] && [ -x "$want" ]; then
      change "switching $alt to legacy" update-alternatives --set "$alt" "$want"
    fi
  fi
done

# ---- nsplane itself -------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  change "creating virtual environment $venv" /usr/bin/python3 -m venv "$venv"
fi
stamp="$venv/.nsplane-installed"
src_hash="$(sha256sum < "$here/pyproject.toml" | cut -c1-16)"
install_nsplane() {
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
  echo "$src_hash:$here" > "$stamp"
}
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$src_hash:$here" ]; then
  change "installing nsplane into $venv" install_nsplane
fi
if [ "$(readlink -f /usr/local/bin/nsplane 2>/dev/null)" != "$(readlink -f "$venv/bin/nsplane")" ]; then
  change "linking /usr/local/bin/nsplane" ln -sf "$venv/bin/nsplane" /usr/local/bin/nsplane
fi

# ---- vm mode: systemd units, host mode, kubeconfig ------------------------
systemd_units() {
  if [ ! -d /run/systemd/system ]; then
    echo "systemd is not PID 1 here: no units installed; nsplane runs its processes itself (logs in /var/lib/nsplane/nsplane/logs)"
    return 0
  fi
  local unit changed=0
  for unit in nsplane-server.service nsplane-agent.service; do
    sed "s#/opt/nsplane/venv#$venv#g" "$here/vagrant/systemd/$unit" > "/tmp/.$unit.new"
    if ! cmp -s "/tmp/.$unit.new" "/etc/systemd/system/$unit"; then
      say "installing /etc/systemd/system/$unit"
      install -m 0644 "/tmp/.$unit.new" "/etc/systemd/system/$unit"
      changed=1
    fi
    rm -f "/tmp/.$unit.new"
  done
  [ "$changed" = 0 ] || systemctl daemon-reload
}

vm_iface() {   # the interface holding NSPLANE_IP (Vagrant's private network)
  ip -o -4 addr show | awk -v want="${NSPLANE_IP:?NSPLANE_IP is not set}" '{split($4, a, "/"); if (a[1] == want) {print $2; exit}}'
}

vagrant_kubeconfig() {   # kubectl for the vagrant user, against the API on loopback
  id vagrant >/dev/null 2>&1 || return 0
  local dir=/home/vagrant/.kube new
  new="$(nsplane kubeconfig)"
  if [ ! -f "$dir/config" ] || [ "$(cat "$dir/config")" != "$new" ]; then
    say "writing $dir/config for the vagrant user"
    install -d -m 0700 -o vagrant -g vagrant "$dir"
    printf '%s\n' "$new" > "$dir/config"
    chown vagrant:vagrant "$dir/config"
    chmod 0600 "$dir/config"
  fi
}

wait_web_ready() {
  for _ in $(seq 1 150); do
    ready="$(nsplane get deploy web -o json 2>/dev/null | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get("status",{}).get("readyReplicas",0))' 2>/dev/null || echo 0)"
    [ "$ready" = "3" ] && return 0
    sleep 0.2
  done
}

vm_server() {
  local iface="$1" share="${NSPLANE_SHARE:-/vagrant/.nsplane}"
  nsplane up --host-mode --iface "$iface" --node-name "$(hostname)" --masquerade-egress --allow-root-netns \
    ${NSPLANE_LB_POOL:+--lb-pool "$NSPLANE_LB_POOL"}
  if [ -d "$(dirname "$share")" ]; then   # hand the node token to the other VMs
    install -d -m 0700 "$share"
    install -m 0600 /var/lib/nsplane/nsplane/node-token "$share/node-token"
  fi
  vagrant_kubeconfig
  nsplane apply -f "$here/vagrant/demo/web.yaml" -f "$here/vagrant/demo/web-svc.yaml"
  echo "Waiting for the web pods to be Ready..."
  wait_web_ready
  nsplane get nodes -o wide
  nsplane get svc
  echo
  echo "Next (the README's \"In a VM\" walkthrough):"
  echo "  vagrant ssh -c 'kubectl get svc -A'"
  echo "  vagrant ssh -c 'kubectl apply -f /vagrant/vagrant/demo/web-nodeport.yaml'"
  echo "  curl http://${NSPLANE_IP}:30080      # from your own machine"
}

vm_agent() {
  local iface="$1" token="${NSPLANE_SHARE:-/vagrant/.nsplane}/node-token"
  for _ in $(seq 1 120); do [ -s "$token" ] && break; sleep 1; done
  if [ ! -s "$token" ]; then
    echo "no node token at $token after 120 s: provision the server VM first (vagrant up node-1)" >&2
    exit 1
  fi
  nsplane join --server "https://${NSPLANE_SERVER_IP:?NSPLANE_SERVER_IP is not set}:6443" --token-file "$token" \
    --iface "$iface" --node-name "$(hostname)" --masquerade-egress --allow-root-netns
  echo
  echo "Next: vagrant ssh node-1 -c 'kubectl get nodes -o wide'"
  echo "      vagrant ssh $(hostname) -c 'sudo iptables -t nat -S KUBE-NODEPORTS'"
}

case "$mode" in
  demo)
    nsplane up
    nsplane apply -f "$here/vagrant/demo/web.yaml" -f "$here/vagrant/demo/web-svc.yaml"
    echo
    echo "Waiting for the web pods to be Ready..."
    wait_web_ready
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
    # One pytest worker per core (2 to 4): integration tests spend most of
    # their time waiting on their own throwaway clusters, which never share
    # names, namespaces or addresses; a module's tests stay on one worker.
    workers="$(nproc)"; [ "$workers" -lt 2 ] && workers=2; [ "$workers" -gt 4 ] && workers=4
    # The SPDY-only client tests need an old kubectl: Debian 12's kubernetes-client
    # (1.20), unpacked beside the system, never installed over a newer kubectl.
    old_kubectl="${NSPLANE_OLD_KUBECTL:-/tmp/nsr/k120/usr/bin/kubectl}"
    if [ ! -x "$old_kubectl" ] && [ -z "${NSPLANE_OLD_KUBECTL:-}" ]; then
      deb_dir="$(mktemp -d /tmp/nsplane-k120.XXXXXX)"
      if (cd "$deb_dir" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
        say "unpacking Debian's kubectl 1.20 under /tmp/nsr/k120 (the SPDY client tests)"
        mkdir -p /tmp/nsr/k120 && dpkg-deb -x "$deb_dir"/kubernetes-client_*.deb /tmp/nsr/k120 \
          || echo "could not unpack it: the SPDY client tests will be skipped" >&2
      fi
      rm -rf "$deb_dir"
    fi
    exec "$venv/bin/python" -m pytest -q -n "$workers" --dist loadfile tests
    ;;
  check)
    if [ "$pending" -gt 0 ]; then echo "provision.sh: $pending step(s) left to do" >&2; exit 1; fi
    echo "provision.sh: nothing to do"
    ;;
  vm)
    systemd_units
    iface="$(vm_iface)"
    if [ -z "$iface" ]; then echo "no interface has NSPLANE_IP=$NSPLANE_IP; is the private network up?" >&2; exit 1; fi
    if [ "${NSPLANE_ROLE:-server}" = server ]; then vm_server "$iface"; else vm_agent "$iface"; fi
    ;;
  "") ;;
esac
