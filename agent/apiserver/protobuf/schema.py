"""Our message tables (messages/*.py) compiled into Field and Message objects.

A table is one dict per message, field number -> spec, where a spec reads like
the Go struct field it stands for: its json tag, then its Go type. Entries
follow the Go struct's declaration order, which is the order of the keys in
kube-apiserver's JSON; the wire is written in field-number order.

    1: "replicas,omitempty *int32"          pointer: on the wire only when set, zero kept
    2: "selector *meta.LabelSelector"       message of another group
    3: "template core.PodTemplateSpec"      value struct: always on the wire, always in JSON
    5: "minReadySeconds,omitempty int32"    value scalar: always on the wire, omitted from JSON when zero
    2: ",inline VolumeSource"               a nested message on the wire, merged into the parent in JSON

Types: string int32 int64 bool []byte; the atoms of atoms.py (Time,
MicroTime, IntOrString, Quantity, FieldsV1); messages by name -- bare for the
same group, `group.Name` for another. Prefixes `*` (pointer), `[]` (slice)
and `map[string]` as in Go.

Each group module declares GROUP and MESSAGES; the module that owns the
group's kinds also declares API_VERSION, KINDS and, for kinds with no
`<Kind>List` in Kubernetes, UNLISTED. The lists (ListMeta metadata=1,
items=2) are built here rather than written out 40 times.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from .atoms import ATOMS
from .messages import MODULES
from .wire import LEN, VARINT

SCALARS = {"string": LEN, "int32": VARINT, "int64": VARINT, "bool": VARINT, "bytes": LEN}
_SPEC = re.compile(r"(?P<name>\w*)(?P<opts>(,\w+)*) (?P<ptr>\*)?(?P<kind>\[\](?!byte\b)|map\[string\])?(?P<type>[\w.\[\]]+)")


@dataclass(eq=False)
class Field:
    number: int
    name: str                 # the JSON name; "" when inline
    type: str                 # a scalar, an atom, or a qualified message name ("core.PodSpec")
    pointer: bool = False
    repeated: bool = False
    map: bool = False
    omitempty: bool = False
    omitzero: bool = False
    inline: bool = False
    message: Message | None = None
    atom: type | None = None

    @property
    def nullable(self) -> bool:
        """Go can leave it nil: absent from the wire, omitted (or null) in JSON."""
        return self.pointer or self.repeated or self.map or self.type == "bytes"

    @property
    def wire_type(self) -> int:
        return SCALARS.get(self.type, LEN)


@dataclass(eq=False)
class Message:
    name: str                                  # "apps.DeploymentSpec"
    fields: tuple[Field, ...] = ()             # in Go's declaration order: the order of the JSON keys
    wire_order: tuple[Field, ...] = ()         # by field number: the order Go writes them
    by_number: dict[int, Field] = field(default_factory=dict)


def parse_spec(group: str, number: int, spec: str) -> Field:
    m = _SPEC.fullmatch(spec)
    if not m:
        raise ValueError(f"{group}: field {number}: cannot read spec {spec!r}")
    opts = set(m["opts"].split(",")[1:])
    unknown = opts - {"omitempty", "omitzero", "inline"}
    if unknown:
        raise ValueError(f"{group}: field {number}: unknown json option(s) {sorted(unknown)}")
    type_ = "bytes" if m["type"] == "[]byte" else m["type"]
    if type_ not in SCALARS and type_ not in ATOMS and "." not in type_:
        type_ = f"{group}.{type_}"
    return Field(number, m["name"], type_, pointer=bool(m["ptr"]), repeated=m["kind"] == "[]",
                 map=m["kind"] == "map[string]", omitempty="omitempty" in opts, omitzero="omitzero" in opts,
                 inline="inline" in opts)


@dataclass
class Registry:
    messages: dict[str, Message]
    kinds: dict[tuple[str, str], Message]       # (apiVersion, kind) -> message


def _list_message(group: str, kind: str) -> dict[int, str]:
    return {1: "metadata,omitempty meta.ListMeta", 2: f"items []{group}.{kind}"}


@cache
def registry() -> Registry:
    """Every table compiled and cross-linked; a dangling type name fails here, at first use."""
    messages: dict[str, Message] = {}
    kind_names: dict[tuple[str, str], str] = {}
    tables: list[tuple[str, str, dict]] = []
    for module in MODULES:
        group = module.GROUP
        tables += [(group, name, table) for name, table in module.MESSAGES.items()]
        for kind in getattr(module, "KINDS", ()):
            kind_names[(module.API_VERSION, kind)] = f"{group}.{kind}"
            if kind not in getattr(module, "UNLISTED", ()):
                tables.append((group, f"{kind}List", _list_message(group, kind)))
                kind_names[(module.API_VERSION, f"{kind}List")] = f"{group}.{kind}List"
    for group, name, table in tables:
        qualified = f"{group}.{name}"
        if qualified in messages:
            raise ValueError(f"message {qualified} is defined twice")
        fields = tuple(parse_spec(group, n, spec) for n, spec in table.items())
        messages[qualified] = Message(qualified, fields, tuple(sorted(fields, key=lambda f: f.number)),
                                      {f.number: f for f in fields})
    for message in messages.values():
        for f in message.fields:
            if f.type in ATOMS:
                f.atom = ATOMS[f.type]
            elif f.type not in SCALARS:
                if f.type not in messages:
                    raise ValueError(f"{message.name}.{f.name or f.number}: unknown type {f.type}")
                f.message = messages[f.type]
            if f.inline and (f.message is None or f.nullable):
                raise ValueError(f"{message.name}: field {f.number}: only a value message can be inline")
    return Registry(messages, {key: messages[name] for key, name in kind_names.items()})
