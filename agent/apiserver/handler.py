"""Request dispatch: one `Handler` per request (the listeners are
agent/apiserver/serving.py) authenticates it (agent/apiserver/authn/),
authorizes it (agent/apiserver/authz.py), then sends it to what answers:
health and /version, discovery (/api, /apis, aggregated discovery:
agent/apiserver/discovery.py), OpenAPI v2/v3 (agent/apiserver/openapi.py), or
a verb on a resource path (agent/apiserver/paths.py).

The verbs, for the kinds in `agent.api.kinds`: get and list (label and field
selectors, server-side Tables for `kubectl get`: agent/apiserver/tables.py,
paging: agent/apiserver/paging.py), watch (agent/apiserver/watch.py), create,
update (PUT, resourceVersion conflicts), PATCH (strategic, merge and JSON
patch: agent/apiserver/patch.py), delete (gracePeriodSeconds,
propagationPolicy), dryRun=All and the scale subresource
(agent/apiserver/writes.py), the status subresource, pods/binding, the
connect subresources (agent/apiserver/connect.py): pod logs and exec/attach,
relayed to the pod's kubelet, and pods/services/nodes proxy;
serviceaccounts/token and selfsubjectreviews (agent/apiserver/tokenrequest.py),
and the requester of a CertificateSigningRequest (agent/apiserver/csrstrategy.py).
fieldValidation
prunes or refuses unknown fields before a write. The registry does
defaulting, validation and allocation; errors are `Status` objects.
Custom resources (agent/apiserver/crd/) are served on the same paths once
their CRD is established; `application/apply-patch+yaml` PATCHes are
server-side apply (agent/apiserver/ssa/), and every write is made as the
request's field manager, for managedFields.
"""
from __future__ import annotations

import json
import logging
import urllib.parse
from http.server import BaseHTTPRequestHandler

import yaml

from agent.api.kinds import Kind
from agent.api.pki import PUBLIC_PATHS
from agent.apiserver import (
    connect,
    csrstrategy,
    decoding,
    discovery,
    openapi,
    paging,
    patch,
    protobuf,
    tables,
    tokenrequest,
    watch,
    writes,
)
from agent.apiserver.authn.user import LOCAL_ADMIN
from agent.apiserver.crd import serving as crd_serving
from agent.apiserver.crd.definition import KIND as CRD_KIND
from agent.apiserver.crd.definition import CustomKind, served
from agent.apiserver.crd.published import CUSTOM_PATCH_TYPES
from agent.apiserver.paths import list_kind, long_running, parse_path, predicate, read_only, subresource_path
from agent.apiserver.reading import Replay, RequestReader
from agent.apiserver.rbac import reviews
from agent.apiserver.registry import APIError
from agent.apiserver.ssa import apply as ssa_apply
from agent.apiserver.ssa import context as fieldmanager

log = logging.getLogger("nsplane.apiserver")
BODY_TYPES = ("application/json", "application/yaml", protobuf.MEDIA_TYPE)
REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 408: "Timeout", 413: "RequestEntityTooLarge",
           414: "RequestURITooLong", 415: "UnsupportedMediaType", 431: "RequestHeaderFieldsTooLarge",
           501: "NotImplemented"}


class Handler(RequestReader, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nsplane-apiserver"
    api = None   # the APIServer (agent/apiserver/serving.py), set on the class it binds per server

    def log_message(self, fmt, *args):  # noqa: N802 - stdlib name
        log.debug("%s %s", getattr(self, "command", None), getattr(self, "path", None))   # none yet: a request line refused

    # ---- plumbing ----------------------------------------------------
    def _send(self, code: int, body: dict | bytes, ctype: str = "application/json") -> None:
        if isinstance(body, dict) and self._custom is not None and body.get("kind") == self._custom.kind:
            body = self._custom.output(body)       # as the requested version serves it
        if isinstance(body, bytes):
            data = body
        elif getattr(self, "_yaml", False) and ctype == "application/json":
            data, ctype = yaml.safe_dump(body, sort_keys=False).encode(), "application/yaml"
        elif getattr(self, "_protobuf", False) and protobuf.served(body.get("apiVersion"), body.get("kind")):
            data, ctype = protobuf.encode(body), protobuf.MEDIA_TYPE
        else:
            data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for w in getattr(self, "_warnings", ()):
            self.send_header("Warning", f"299 - {json.dumps(w)}")
        self.send_header("Content-Length", str(len(data)))
        self._write_with_headers(data if self.command != "HEAD" else b"")

    def _body(self, what: str = "object") -> dict:
        """The request body, one JSON object (agent/apiserver/decoding.py refuses anything else)."""
        return decoding.body_object(self._raw_body(), None, what)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server answers itself (a request line it cannot parse, an
        unknown method, oversized headers): a Status, never an HTML page.
        An unknown method is kube-apiserver's 405, not http.server's 501."""
        if code == 501:
            code, message = 405, "the server does not allow this method on the requested resource"
        status = APIError(code, REASONS.get(code, "BadRequest"), message or self.responses.get(code, ("",))[0]).status()
        data = json.dumps(status).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(data)))
        self._write_with_headers(data if self.command != "HEAD" and code >= 200 else b"")

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        self._warnings: list[str] = []
        self._custom: CustomKind | None = None     # the custom resource the path names, if any
        self._yaml = False
        self._protobuf = protobuf.wants_protobuf(self.headers.get("Accept"))
        rfile = self.rfile
        try:
            # Read the body whatever happens next: left unread on a keep-alive
            # connection, it would be parsed as the next request.
            if "Upgrade" not in self.headers:
                self.rfile = Replay(self._raw_body(), rfile)
            self.api.deadlines.end(self.connection)          # the request is in: no read deadline for the answer
            if long_running(url.path, q, self.headers):
                self.connection.settimeout(None)
            self._authenticate(url.path)
            self.user = self.api.authz.check(self.user, self.headers, self.command, url.path, q)
            if self.command not in ("GET", "HEAD") and read_only(url.path):
                raise APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource")
            self._yaml = self._negotiate(url.path)
            if url.path in ("/healthz", "/readyz", "/livez"):
                return self._send(200, b"ok", "text/plain")
            if url.path == "/version":
                return self._send(200, discovery.version_info())
            if url.path.startswith("/openapi/") and self.command == "GET":
                return self._send(200, *crd_serving.serve_openapi(url.path, self.headers.get("Accept"),
                                                                  self._custom_kinds()))
            doc = crd_serving.discovery_document(url.path, self.headers.get("Accept"), self._custom_kinds()) \
                or discovery.document(url.path, self.headers.get("Accept"))
            if doc is None and self.api.tokens is not None and self.command == "GET":
                doc = self.api.tokens.discovery(url.path)     # service account issuer discovery
            if doc is not None:
                return self._send(200, *doc)
            kind, ns, name, sub = self._parse_path(url.path)
            if sub == "proxy" and name:
                return connect.serve_proxy(self, kind, ns, name, subresource_path(url.path, ns is not None),
                                           url.query)
            if self.command not in ("GET", "POST", "PUT", "PATCH", "DELETE") or (
                    kind.verbs is not None and (self.command != "POST" or name)):      # selfsubjectreviews
                raise APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource")
            self._decode_body(kind)
            self._check_body(kind, name, sub)
            self._field_validation(kind, sub, q)
            with fieldmanager.writing_as(fieldmanager.manager_of(q, self.headers.get("User-Agent"))):
                getattr(self, "_do_" + self.command.lower())(kind, ns, name, sub, q)
        except APIError as e:
            self._send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug must not kill the server; say so loudly
            log.exception("request %s %s failed", self.command, self.path)
            self._send(500, APIError(500, "InternalError", f"Internal error occurred: {e}").status())
        finally:
            self.rfile = rfile

    def _negotiate(self, path: str) -> bool:
        """kube's response negotiation on API paths: an Accept that lists no
        media type we serve is 406 NotAcceptable; True when YAML comes first."""
        if not path.startswith(("/api/", "/apis/")) and path not in ("/api", "/apis"):
            return False
        media = protobuf.negotiation.preferred(self.headers.get("Accept"))
        if media is None:
            raise APIError(406, "NotAcceptable", "only the following media types are accepted: "
                                                 + ", ".join(protobuf.negotiation.SERVED))
        return media == "application/yaml"

    def _custom_kinds(self) -> list[CustomKind]:
        return served(self.api.registry.store)

    def _parse_path(self, path: str):
        """A built-in kind's path, else a custom resource's (agent/apiserver/crd/)."""
        try:
            return parse_path(path)
        except APIError as e:
            if e.code != 404:
                raise
            try:
                found = crd_serving.parse(path, self._custom_kinds())
            except APIError:
                raise e from None
        self._custom = found[0]
        return found

    def _decode_body(self, kind: Kind) -> None:
        """Create and update bodies come as JSON, YAML or protobuf (what
        kubectl's typed commands send, `kubectl create namespace` among them);
        the verbs read JSON, so the other two are converted here."""
        if self.command not in ("POST", "PUT"):
            return
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype == "application/json":
            return
        if ctype not in BODY_TYPES:
            raise APIError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: '
                           f'{", ".join(BODY_TYPES)}')
        raw = self._raw_body()
        try:
            obj = protobuf.decode(raw) if ctype == protobuf.MEDIA_TYPE else yaml.safe_load(raw or b"{}")
            data = json.dumps(obj, default=str).encode()      # YAML timestamps become strings, as sigs.k8s.io/yaml does
        except (protobuf.ProtobufError, yaml.YAMLError, RecursionError, TypeError, ValueError) as e:
            raise APIError(400, "BadRequest", f"the object provided is unrecognized (must be of type "
                                              f"{kind.kind}): {type(e).__name__}: {e}") from None
        self.headers.replace_header("Content-Type", "application/json")
        if "Content-Length" in self.headers:
            self.headers.replace_header("Content-Length", str(len(data)))
        self.rfile = Replay(data, self.rfile)

    def _check_body(self, kind: Kind, name: str | None, sub: str | None) -> None:
        """Create, update and patch bodies are decoded and type-checked
        (agent/apiserver/decoding.py) before any verb reads them; other
        bodies (exec, attach: an upgraded stream) are left to their verbs."""
        if decoding.checked_body(self.command, name, sub) is None:
            return
        raw = self._raw_body()
        self.rfile = Replay(raw, self.rfile)
        decoding.check_request_body(kind, self.command, name, sub, raw, self.headers.get("Content-Type") or "")

    def _field_validation(self, kind: Kind, sub: str | None, q: dict) -> None:
        """?fieldValidation=Strict|Warn|Ignore on create, update and patch
        bodies (agent/apiserver/openapi.py): Strict rejects unknown fields, Warn adds
        Warning headers, both Warn and Ignore drop them. The body is read
        here and replayed (pruned) to the verb."""
        if self.command not in ("POST", "PUT", "PATCH") or sub:
            return
        if isinstance(kind, CustomKind):
            self._warnings, raw = crd_serving.check_body(kind, self._raw_body(), self.command,
                                                         self.headers.get("Content-Type", ""),
                                                         q.get("fieldValidation"))
            self._warnings += crd_serving.cel_warning(kind)
        else:
            self._warnings, raw = openapi.check_body(kind, self._raw_body(), self.command,
                                                     self.headers.get("Content-Type", ""), q.get("fieldValidation"))
            if kind.kind == CRD_KIND and self.command in ("POST", "PUT"):
                self._warnings += crd_serving.definition_cel_warning(raw)
        if "Content-Length" in self.headers:
            self.headers.replace_header("Content-Length", str(len(raw)))
        self.rfile = Replay(raw, self.rfile)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _authenticate(self, path: str) -> None:
        """kube-apiserver without anonymous auth: a missing or unknown bearer
        token is 401 Unauthorized (health and version stay public). Sets
        `self.user`, a UserInfo with the user's groups: the local admin
        (system:masters) on the trusted socket, None for public paths."""
        self.user = None
        auth = self.api.authenticator
        if auth is None or getattr(self.server, "trusted", False):
            self.user = LOCAL_ADMIN
            return
        if path in PUBLIC_PATHS:
            return
        self.user = auth.authenticate(self.headers.get("Authorization"))
        if self.user is None:
            raise APIError(401, "Unauthorized", "Unauthorized")

    # ---- verbs -------------------------------------------------------
    def _do_get(self, kind, ns, name, sub, q):
        reg = self.api.registry
        if name and sub == "log":
            return connect.pod_log(self, ns, name, q)
        if name and sub in ("exec", "attach") and kind.kind == "Pod":
            return connect.pod_stream(self, ns, name, sub, q)
        if name and sub == "portforward" and kind.kind == "Pod":
            return connect.pod_port_forward(self, ns, name)
        if name and sub == "scale":
            read_scale, _ = writes.scale_view(kind)
            return self._send(200, read_scale(reg.get(kind, ns, name)))
        as_table = self._table_version(kind, sub)
        if name:
            obj = reg.get(kind, ns, name)
            if as_table:
                return self._send(200, watch.table(kind, [obj], version=as_table, include=self._include(q),
                                                   resource_version=obj["metadata"].get("resourceVersion", "")))
            return self._send(200, obj)
        pred = predicate(q, kind.kind)
        if q.get("watch") in ("1", "true"):
            return watch.stream(self, reg.store, kind, ns, q, pred, self.api.stopping,
                                self._table_version(kind, None), self._include(q))
        items, rv = reg.store.list(kind.resource, ns if kind.namespaced else None, pred)
        try:
            items, md = paging.page(items, rv, q.get("limit"), q.get("continue"))
        except paging.BadContinue as e:
            raise APIError(400, "BadRequest", str(e)) from None
        if as_table:
            return self._send(200, watch.table(
                kind, items, version=as_table, include=self._include(q), resource_version=md["resourceVersion"],
                continue_token=md.get("continue", ""), remaining=md.get("remainingItemCount")))
        if isinstance(kind, CustomKind):
            items = [kind.output(o) for o in items]
        self._send(200, {"kind": list_kind(kind), "apiVersion": kind.api_version, "metadata": md, "items": items})

    def _table_version(self, kind: Kind, sub: str | None) -> str | None:
        """'v1'/'v1beta1' when the client asked for a meta.k8s.io Table (kubectl get)."""
        if sub or not (isinstance(kind, CustomKind) or kind.kind == CRD_KIND or tables.supported(kind.kind)):
            return None
        return tables.wants_table(self.headers.get("Accept"))

    @staticmethod
    def _include(q: dict) -> str:
        include = q.get("includeObject") or "Metadata"
        if include not in tables.INCLUDE_OBJECT:
            raise APIError(400, "BadRequest", f'includeObject must be one of {", ".join(tables.INCLUDE_OBJECT)}, '
                                              f'not "{include}"')
        return include

    def _do_post(self, kind, ns, name, sub, q):
        if name and sub in ("exec", "attach") and kind.kind == "Pod":
            return connect.pod_stream(self, ns, name, sub, q)
        if name and sub == "portforward" and kind.kind == "Pod":
            return connect.pod_port_forward(self, ns, name)
        if name and sub == "token" and kind.kind == "ServiceAccount" and self.api.tokens is not None:
            return self._send(201, self.api.tokens.create_token(self.api.registry, ns, name, self._body()))
        if kind.kind == "SelfSubjectReview":
            return self._send(201, tokenrequest.self_subject_review(self.user))
        if kind.group == "authorization.k8s.io":        # access reviews (kubectl auth can-i)
            return self._send(201, reviews.review(self.api.authz, kind.kind, ns, self.user or LOCAL_ADMIN,
                                                  self._body()))
        if name and sub == "binding" and kind.kind == "Pod":
            self._writer(q).bind(ns, name, self._body())
            return self._send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "code": 201})
        if name:
            raise APIError(405, "MethodNotAllowed", "POST to a named resource is not supported")
        reg, body = self._writer(q), self._body()
        if kind.kind == csrstrategy.KIND:       # the requester, as authenticated, never as claimed
            csrstrategy.stamp_requester(body, self.user or LOCAL_ADMIN)
        self._send(201, reg.create(kind, ns, body))

    def _do_put(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "PUT needs a resource name")
        reg = self._writer(q)
        if sub == "scale":
            read_scale, write_scale = writes.scale_view(kind)
            with reg.store.transaction():
                new = write_scale(reg.get(kind, ns, name), self._body())
                out = read_scale(reg.update(kind, ns, name, new))
            return self._send(200, out)
        self._send(200, reg.update(kind, ns, name, self._body(), sub))

    def _do_patch(self, kind, ns, name, sub, q):
        """Strategic merge, JSON merge and JSON patches (agent/apiserver/patch.py), on
        the object, its status, or its scale."""
        if not name:
            raise APIError(405, "MethodNotAllowed", "PATCH needs a resource name")
        raw = self._raw_body()
        ctype = self.headers.get("Content-Type", "")
        reg = self._writer(q)
        if ctype.split(";")[0].strip() == patch.APPLY_PATCH:
            code, out, self._warnings = ssa_apply.serve(reg, kind, ns, name, sub, q, raw)
            return self._send(code, out)
        if sub == "scale":
            read_scale, write_scale = writes.scale_view(kind)
        if isinstance(kind, CustomKind) and ctype.split(";")[0].strip() == patch.STRATEGIC_PATCH:
            raise APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: " + ", ".join(CUSTOM_PATCH_TYPES))
        with reg.store.transaction():
            cur = reg.get(kind, ns, name)
            target = read_scale(cur) if sub == "scale" else cur
            try:
                patched = patch.apply(ctype, target, raw, "Scale" if sub == "scale" else kind.kind)
            except patch.PatchError as e:
                raise APIError(e.code, {400: "BadRequest", 415: "UnsupportedMediaType"}.get(e.code, "Invalid"),
                               str(e)) from None
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise APIError(422, "Invalid", f"{kind.resource} \"{name}\": the patch removed the object's metadata")
            error = decoding.type_error(kind.kind, patched) if ctype.startswith(patch.JSON_PATCH) and not sub else None
            if error:                 # a JSON patch's values are only typed in what it produces
                raise APIError(422, "Invalid", f' "" is invalid: patch: Invalid value: "{name}": {error}')
            if sub == "scale":
                out = read_scale(reg.update(kind, ns, name, write_scale(cur, patched)))
            else:
                out = reg.update(kind, ns, name, patched, sub)
        self._send(200, out)

    def _do_delete(self, kind, ns, name, sub, q):
        if not name:
            return self._delete_collection(kind, ns, q)
        body, grace = self._delete_options(q)
        pre = body.get("preconditions") or {}
        reg = self._writer(q, body)
        obj = writes.delete(reg, kind, ns, name, grace, pre.get("uid"),
                            pre.get("resourceVersion"), writes.propagation(q, body))
        self._send(200, obj)

    def _delete_collection(self, kind, ns, q):
        """DELETE on a collection: every object the label and field selectors
        keep, deleted as one by one would be (grace, propagation, dry run);
        the answer lists what was deleted, as kube-apiserver's does."""
        if kind.resource == "namespaces":
            raise APIError(405, "MethodNotAllowed", 'the server does not allow this method on the requested resource')
        body, grace = self._delete_options(q)
        reg = self._writer(q, body)
        items, _ = reg.store.list(kind.resource, ns if kind.namespaced else None, predicate(q, kind.kind))
        deleted = []
        for obj in items:
            md = obj["metadata"]
            try:
                deleted.append(writes.delete(reg, kind, md.get("namespace"), md["name"], grace, None, None,
                                             writes.propagation(q, body)))
            except APIError as e:
                if e.code != 404:      # gone meanwhile: nothing left to delete
                    raise
        self._send(200, {"kind": list_kind(kind), "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(reg.store.resource_version)}, "items": deleted})

    def _delete_options(self, q: dict) -> tuple[dict, int | None]:
        """A DELETE's DeleteOptions body (checked: agent/apiserver/writes.py)
        and its grace period, from the query or the body."""
        body = writes.delete_options(self._body("DeleteOptions"))
        return body, writes.grace_period(q.get("gracePeriodSeconds", body.get("gracePeriodSeconds")))

    def _writer(self, q: dict, body: dict | None = None):
        """The registry, or a dry-run view of it for ?dryRun=All."""
        dry = q.get("dryRun") or ",".join((body or {}).get("dryRun") or [])
        reg = writes.dry_run_registry(self.api.registry) if writes.check_dry_run(dry) else self.api.registry
        return self.api.authz.guard(reg, self.user)      # RBAC objects: escalation and bind checks
