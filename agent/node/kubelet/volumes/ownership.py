"""fsGroup on volumes (pkg/volume/volume_linux.go SetVolumeOwnership): with
the pod's securityContext.fsGroup, every file and directory of an emptyDir,
configMap, secret, downwardAPI or projected volume gets that group, files
group-readable (and group-writable unless the volume is read-only data),
directories group-searchable with the setgid bit so new files inherit the
group. hostPath volumes are never changed, as the kubelet leaves them."""
from __future__ import annotations

import os
import stat


def fs_group(pod: dict) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def set_ownership(path: str, gid: int, readonly: bool) -> None:
    """chgrp -R gid, g+r(w) on files, g+rwx(s) on directories; symlinks untouched."""
    file_bits = stat.S_IRGRP | (0 if readonly else stat.S_IWGRP)
    dir_bits = stat.S_IRGRP | stat.S_IXGRP | stat.S_ISGID | (0 if readonly else stat.S_IWGRP)
    for dirpath, dirs, files in os.walk(path):
        for name, bits in [(dirpath, dir_bits)] + [(os.path.join(dirpath, f), file_bits) for f in files]:
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_gid != gid:
                os.lchown(name, -1, gid)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode) and mode & stat.S_IXUSR:
                bits |= stat.S_IXGRP
            if mode | bits != mode:
                os.chmod(name, mode | bits)
