"""The node's container runtime layer: pods become OCI containers.

What the kubelet asks a CRI runtime (containerd) for, done here with real OCI
tools and no daemon of our own:

- `spec`: a pod's container -> an OCI runtime spec (config.json), with
  containerd's defaults and Kubernetes' securityContext/resources rules
  (`process` merges the image config, `resources` does the quantity maths);
- `images`: a content-addressed image store per machine (an OCI image
  layout driven by skopeo and umoci), with `reference` parsing names and
  deciding pull policy as the kubelet does;
- `rootfs`: each container's root filesystem (overlayfs over an unpacked
  image, or a read-only view of the host for the built-in stand-ins);
- `oci`: crun or runc, logs to files, OOM detection and cgroup cleanup, with
  one small monitor process per container holding its exit status
  (`monitor` is that process, `monitors` the agent's side of it) and
  `ttyexec` holding the terminal of an interactive exec;
- `cgroups` and `kernel`: the cgroup layouts and the few system calls and
  /proc readers the rest shares; `errors`: exceptions carrying the kubelet's
  reason strings.

Nothing here imports the rest of `agent`: the kubelet calls this API.
"""
