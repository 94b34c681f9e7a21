"""CoreDNS's `log` plugin: one line per query on stdout, in its format.

The default format is `{remote}:{port} - {>id} "{type} {class} {name} {proto}
{size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}`, printed with
CoreDNS's `[INFO] ` prefix, e.g.

    [INFO] 10.244.0.5:41234 - 4660 "A IN web.default.svc.cluster.local. udp 58 false 1232" NOERROR qr,aa,rd 110 0.000131s

`class` limits the lines to success, denial (NXDOMAIN, NODATA) or error
replies. Pure formatting; the caller prints.
"""

from __future__ import annotations

import re
import struct

from dnslib import CLASS, QTYPE, RCODE

_PLACEHOLDER = re.compile(r"\{>?[a-z]+\}")
_FLAGS = ((0x8000, "qr"), (0x0400, "aa"), (0x0200, "tc"), (0x0100, "rd"), (0x0080, "ra"), (0x0020, "ad"),
          (0x0010, "cd"))


def reply_class(reply: bytes) -> str:
    rcode = reply[3] & 0xF
    if rcode == 3 or (rcode == 0 and struct.unpack_from("!H", reply, 6)[0] == 0):
        return "denial"
    return "success" if rcode == 0 else "error"


def line(fmt: str, q, addr, proto: str, size: int, reply: bytes, duration: float) -> str:
    flags = struct.unpack_from("!H", reply, 2)[0]
    name = ".".join(q.labels) + "."
    values = {
        "{remote}": addr[0] if addr else "-", "{port}": str(addr[1]) if addr else "-",
        "{>id}": str(q.qid), "{type}": QTYPE.get(q.qtype, f"TYPE{q.qtype}"),
        "{class}": CLASS.get(q.qclass, f"CLASS{q.qclass}"), "{name}": name, "{proto}": proto,
        "{size}": str(size), "{>do}": "true" if q.edns_do else "false",
        "{>bufsize}": str(q.edns_size if q.edns_size is not None else 512),
        "{rcode}": RCODE.get(flags & 0xF, str(flags & 0xF)),
        "{>rflags}": ",".join(n for bit, n in _FLAGS if flags & bit), "{rsize}": str(len(reply)),
        "{duration}": f"{duration:.9f}".rstrip("0").rstrip(".") + "s", "{>opcode}": str((flags >> 11) & 0xF),
    }
    return "[INFO] " + _PLACEHOLDER.sub(lambda m: values.get(m.group(0), "-"), fmt)
