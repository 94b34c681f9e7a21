"""`nsplane image load|ls|rm`: the machine's image store from the command line,
as `kind load image-archive` and `crictl images` / `crictl rmi` do it.

Every node of a cluster on this machine runs containers from one store
(<state dir>/<cluster>/images), so an image loaded once is on every node;
`--node` only checks that the node is one of this machine's. None of these
need the cluster to be running.
"""
from __future__ import annotations

import shutil
import sys

from agent.api.config import ClusterConfig
from agent.cli.errors import die
from agent.node.kubelet.kubelet import image_store
from agent.node.runtime import reference
from agent.node.runtime.errors import RuntimeLayerError


def _store(cfg: ClusterConfig):
    for tool in ("skopeo", "umoci"):
        if not shutil.which(tool):
            die(f"error: {tool} is not installed; run vagrant/provision.sh (or apt-get install skopeo umoci)")
    return image_store(cfg)


def human_size(n: int) -> str:
    """Sizes as crictl prints them: decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return f"{n}B"  # pragma: no cover


def local_nodes(cfg: ClusterConfig) -> list[str]:
    if cfg.host_mode or cfg.server_url:
        return [cfg.host_node] if cfg.host_node else []
    return [cfg.node_name(i) for i in cfg.node_list]


def cmd_load(cfg: ClusterConfig, args) -> int:
    nodes = local_nodes(cfg)
    for node in args.node or []:
        if node not in nodes:
            die(f'error: node "{node}" is not on this machine (its nodes: {", ".join(nodes) or "none"}); '
                "load the archive on the node's own machine")
    try:
        loaded = _store(cfg).load(args.file)
    except RuntimeLayerError as e:
        die(f"error: {e}")
    where = ", ".join(args.node or nodes) or "this machine"
    for image in loaded:
        for name in image.names:
            print(f'Image: "{name}" with ID "{image.config_digest or image.digest}" loaded for {where}')
    return 0


def cmd_ls(cfg: ClusterConfig, args) -> int:
    rows = [("NAME", "DIGEST", "SIZE")]
    for image in sorted(_store(cfg).list(), key=lambda i: (i.names or [""])[0]):
        for name in image.names or ["<none>"]:
            rows.append((name, image.digest.partition(":")[2][:12], human_size(image.size)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_rm(cfg: ClusterConfig, args) -> int:
    store = _store(cfg)
    code = 0
    for ref in args.refs:
        try:
            if store.resolve(ref) is None:
                raise RuntimeLayerError(f'image "{ref}" is not in the store (see `nsplane image ls`)')
            store.remove(ref)
            print(f"Deleted: {reference.normalise(ref)}")
        except RuntimeLayerError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 1
    return code


def add_parser(sub) -> None:
    p = sub.add_parser("image", help="load, list and remove the images of this machine's nodes")
    image_sub = p.add_subparsers(dest="action", required=True)
    load = image_sub.add_parser("load", help="load a docker-archive or OCI archive (docker save, skopeo copy)")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--node", action="append", help="a node to load it for (all nodes on this machine "
                                                      "share one store)")
    image_sub.add_parser("ls", help="list images: NAME, DIGEST, SIZE")
    rm = image_sub.add_parser("rm", help="remove images by name")
    rm.add_argument("refs", nargs="+", metavar="REF")


def cmd_image(cfg: ClusterConfig, args) -> int:
    return {"load": cmd_load, "ls": cmd_ls, "rm": cmd_rm}[args.action](cfg, args)
