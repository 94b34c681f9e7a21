"""Pod volumes with real kubectl against a throwaway cluster: a Deployment
serving an nginx site from a ConfigMap volume with a Secret beside it (files,
modes, the atomic writer's layout, read-only mounts, the edit of the
ConfigMap seen within 10 s, a subPath mount that keeps the old content);
emptyDir shared by a pod's containers and on tmpfs with medium: Memory;
downwardAPI; hostPath type checks; a pod waiting on a missing ConfigMap with
the kubelet's FailedMount text, then starting; the kube-api-access volume
and the Python kubernetes client's load_incluster_config() inside a pod
(reads allowed, writes refused while ServiceAccounts are read-only) and kubectl
run inside the pod as its ServiceAccount;
automountServiceAccountToken: false; and kube-apiserver's refusals of bad
volumes and mounts."""
import json
import os
import shutil
import sys
import tempfile

import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
APP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data:
  site.conf: |
    server {
        listen 8080;
        server_name localhost;
        location / { return 200 "hello from the configmap\\n"; }
    }
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
stringData: {password: s3cret, user: admin}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 8080}]
        volumeMounts:
        - {name: config, mountPath: /etc/nginx/conf.d}
        - {name: secret, mountPath: /etc/web-secret, readOnly: true}
        - {name: config, mountPath: /etc/pinned.conf, subPath: site.conf}
        - {name: info, mountPath: /etc/podinfo}
      volumes:
      - name: config
        configMap: {name: web-config}
      - name: secret
        secret:
          secretName: web-secret
          defaultMode: 0400
          items: [{key: password, path: db/password, mode: 0440}, {key: user, path: user}]
      - name: info
        downwardAPI:
          items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: mem-mi, resourceFieldRef: {containerName: nginx, resource: limits.memory, divisor: 1Mi}}
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("volumes")), dns=False) as tc:
        yield tc


def jget(c, *args) -> dict:
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def kexec(c, pod: str, *argv: str, container: str | None = None, check: bool = True):
    extra = ["-c", container] if container else []
    return c.kubectl("exec", pod, *extra, "--", *argv, check=check)


def running(c, name: str) -> dict:
    pod = jget(c, "pod", name)
    assert pod["status"].get("phase") == "Running", pod["status"]
    return pod


@pytest.fixture(scope="module")
def web(c):
    c.kubectl("apply", "-f", "-", input=APP)
    pod = c.wait_ready("app=web", 1, timeout=60)[0]
    return pod["metadata"]["name"]


def test_configmap_and_secret_files_modes_and_layout(c, web):
    ls = kexec(c, web, "ls", "-la", "/etc/nginx/conf.d").stdout
    assert "..data -> ..20" in ls and "site.conf -> ..data/site.conf" in ls
    stat = kexec(c, web, "stat", "-L", "-c", "%a %n", "/etc/nginx/conf.d/site.conf", "/etc/web-secret/user",
                 "/etc/web-secret/db/password").stdout.split("\n")
    assert stat[:3] == ["644 /etc/nginx/conf.d/site.conf", "400 /etc/web-secret/user",
                        "440 /etc/web-secret/db/password"]
    assert kexec(c, web, "cat", "/etc/web-secret/db/password").stdout == "s3cret"
    labels = kexec(c, web, "cat", "/etc/podinfo/labels").stdout
    assert 'app="web"' in labels.splitlines() and 'tier="front"' in labels.splitlines()
    assert int(kexec(c, web, "cat", "/etc/podinfo/mem-mi").stdout) > 0     # no limit: the node's memory
    mounts = kexec(c, web, "cat", "/proc/mounts").stdout
    for path in ("/etc/nginx/conf.d", "/etc/web-secret", SA_DIR):
        line = next(m for m in mounts.splitlines() if m.split()[1] == path)
        assert line.split()[3].startswith("ro"), line
    assert "tmpfs" in next(m for m in mounts.splitlines() if m.split()[1] == "/etc/web-secret")
    r = kexec(c, web, "sh", "-c", "echo x > /etc/nginx/conf.d/new", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_nginx_serves_the_mounted_config(c, web):
    pod = jget(c, "pod", web)
    r = c.nsplane("exec", web, "--", "curl", "-s", "-i", f"http://{pod['status']['podIP']}:8080/", check=False)
    assert r.returncode == 0, r.stderr
    assert "HTTP/1.1 200" in r.stdout and r.stdout.endswith("hello from the configmap\n")


def test_editing_the_configmap_updates_the_file_but_not_the_subpath(c, web):
    before = kexec(c, web, "readlink", "/etc/nginx/conf.d/..data").stdout.strip()
    c.kubectl("patch", "configmap", "web-config", "--type=merge", "-p",
              json.dumps({"data": {"site.conf": "# edited\n", "extra.txt": "new key"}}))
    c.wait(lambda: kexec(c, web, "cat", "/etc/nginx/conf.d/site.conf").stdout == "# edited\n",
           timeout=10, what="the edited ConfigMap in the volume")
    assert kexec(c, web, "cat", "/etc/nginx/conf.d/extra.txt").stdout == "new key"
    assert kexec(c, web, "readlink", "/etc/nginx/conf.d/..data").stdout.strip() != before
    assert "hello from the configmap" in kexec(c, web, "cat", "/etc/pinned.conf").stdout


def bind_view_to_default(c):
    """RBAC: a ServiceAccount holds nothing until bound, as on a real cluster."""
    c.kubectl("apply", "-f", "-", input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
""")


def test_service_account_token_volume_and_incluster_client(c, web):
    bind_view_to_default(c)
    pod = jget(c, "pod", web)
    vols = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(vols) == 1 and vols[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3607
    assert {"name": vols[0]["name"], "readOnly": True, "mountPath": SA_DIR} in \
        pod["spec"]["containers"][0]["volumeMounts"]
    assert kexec(c, web, "cat", f"{SA_DIR}/namespace").stdout == "default"
    ca = jget(c, "configmap", "kube-root-ca.crt")["data"]["ca.crt"]
    assert kexec(c, web, "cat", f"{SA_DIR}/ca.crt").stdout == ca
    script = (
        "import json\n"
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        "v1 = client.CoreV1Api()\n"
        "print(json.dumps(sorted(p.metadata.name for p in v1.list_namespaced_pod('default').items)))\n"
        "try:\n"
        "    v1.create_namespaced_config_map('default', {'metadata': {'name': 'from-pod'}})\n"
        "    print('created')\n"
        "except client.ApiException as e:\n"
        "    print(e.status, json.loads(e.body)['message'])\n")
    out = kexec(c, web, sys.executable, "-c", script).stdout.splitlines()
    assert web in json.loads(out[0])
    assert out[1] == ('403 configmaps is forbidden: User "system:serviceaccount:default:default" cannot create '
                      'resource "configmaps" in API group "" in the namespace "default"')
    assert c.kubectl("get", "configmap", "from-pod", check=False).returncode != 0


def test_emptydir_shared_memory_medium_and_no_automount(c):
    c.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  automountServiceAccountToken: false
  containers:
  - {name: a, image: busybox, command: [sleep, "3600"],
     volumeMounts: [{name: scratch, mountPath: /scratch}, {name: mem, mountPath: /mem}]}
  - {name: b, image: busybox, command: [sleep, "3600"],
     volumeMounts: [{name: scratch, mountPath: /data, subPathExpr: $(POD)}],
     env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
""")
    c.wait(lambda: running(c, "shared"), timeout=60, what="pod shared running")
    kexec(c, "shared", "sh", "-c", "echo hi > /data/from-b", container="b")
    assert kexec(c, "shared", "cat", "/scratch/shared/from-b", container="a").stdout == "hi\n"
    df = kexec(c, "shared", "df", "-k", "/mem", container="a").stdout
    assert "tmpfs" in df and " 8192 " in df
    pod = jget(c, "pod", "shared")
    assert not any(v["name"].startswith("kube-api-access") for v in pod["spec"]["volumes"])
    assert kexec(c, "shared", "ls", SA_DIR, container="a", check=False).returncode != 0


def test_missing_configmap_waits_with_failed_mount_then_starts(c):
    c.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: cfg, mountPath: /cfg}]}
  volumes:
  - {name: cfg, configMap: {name: late, items: [{key: a, path: a.txt}]}}
""")
    want = 'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found'
    c.wait(lambda: want in c.kubectl("describe", "pod", "waits").stdout, timeout=30, what="FailedMount event")
    pod = jget(c, "pod", "waits")
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    c.kubectl("create", "configmap", "late", "--from-literal=b=1")
    want = 'MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: a'
    c.wait(lambda: want in c.kubectl("describe", "pod", "waits").stdout, timeout=30, what="missing key event")
    c.kubectl("create", "configmap", "late", "--from-literal=a=1", "--dry-run=client", "-o", "yaml")
    c.kubectl("patch", "configmap", "late", "--type=merge", "-p", '{"data": {"a": "ok"}}')
    c.wait(lambda: running(c, "waits"), timeout=30, what="pod waits running")
    assert kexec(c, "waits", "cat", "/cfg/a.txt").stdout == "ok"


def test_hostpath_types(c):
    base = tempfile.mkdtemp(prefix="nsplane-hostpath-")
    try:
        with open(os.path.join(base, "file"), "w") as f:
            f.write("from the node\n")
        c.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: host}}
spec:
  containers:
  - {{name: c, image: busybox, command: [sleep, "3600"],
     volumeMounts: [{{name: f, mountPath: /node-file, readOnly: true}}, {{name: d, mountPath: /made}}]}}
  volumes:
  - {{name: f, hostPath: {{path: {base}/file, type: File}}}}
  - {{name: d, hostPath: {{path: {base}/made, type: DirectoryOrCreate}}}}
""")
        c.wait(lambda: running(c, "host"), timeout=60, what="pod host running")
        assert kexec(c, "host", "cat", "/node-file").stdout == "from the node\n"
        kexec(c, "host", "sh", "-c", "echo back > /made/out")
        with open(os.path.join(base, "made", "out")) as f:
            assert f.read() == "back\n"
        c.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: nodir}}
spec:
  containers:
  - {{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{{name: d, mountPath: /d}}]}}
  volumes:
  - {{name: d, hostPath: {{path: {base}/file, type: Directory}}}}
""")
        want = f'MountVolume.SetUp failed for volume "d" : hostPath type check failed: {base}/file is not a directory'
        c.wait(lambda: want in c.kubectl("describe", "pod", "nodir").stdout, timeout=30, what="hostPath refusal")
    finally:
        c.kubectl("delete", "pod", "host", "nodir", "--grace-period=0", "--force", "--ignore-not-found", check=False)
        c.wait(lambda: c.kubectl("get", "pod", "host", check=False).returncode != 0, timeout=30, what="pod gone")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("mounts, volumes, message", [
    ("[{name: nope, mountPath: /x}]", "[]",
     'The Pod "bad" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "nope"'),
    ("[{name: v, mountPath: /x}, {name: v, mountPath: /x}]", "[{name: v, emptyDir: {}}]",
     'The Pod "bad" is invalid: spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/x": must be unique'),
    ("[]", "[{name: v, hostPath: {path: /tmp, type: Dir}}]",
     'The Pod "bad" is invalid: spec.volumes[0].hostPath.type: Unsupported value: "Dir": supported values: "", '
     '"BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"'),
    ("[]", "[{name: v, configMap: {name: c, defaultMode: 1000}}]",
     'The Pod "bad" is invalid: spec.volumes[0].configMap.defaultMode: Invalid value: 1000: must be a number '
     "between 0 and 0777 (octal), both inclusive"),
    ("[{name: v, mountPath: /x, subPath: ../up}]", "[{name: v, emptyDir: {}}]",
     'The Pod "bad" is invalid: spec.containers[0].volumeMounts[0].subPath: Invalid value: "../up": '
     "must not contain '..'"),
])
def test_bad_volumes_are_refused_in_kube_words(c, mounts, volumes, message):
    r = c.kubectl("apply", "-f", "-", check=False, input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: bad}}
spec:
  containers: [{{name: c, image: busybox, volumeMounts: {mounts}}}]
  volumes: {volumes}
""")
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert c.kubectl("get", "pod", "bad", check=False).returncode != 0


def test_kubectl_inside_the_pod_is_the_service_account(c, web):
    bind_view_to_default(c)
    r = kexec(c, web, "kubectl", "get", "pods", "-o", "name")
    assert f"pod/{web}" in r.stdout.split()
    r = kexec(c, web, "kubectl", "create", "configmap", "x", "--from-literal=a=b", check=False)
    assert r.returncode != 0
    assert 'User "system:serviceaccount:default:default" cannot create resource "configmaps"' in r.stderr
