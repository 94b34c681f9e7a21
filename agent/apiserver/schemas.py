"""The object schemas of the kinds we serve, in a compact notation.

Read by agent/apiserver/openapi.py, which turns them into the OpenAPI v2 and v3
documents kubectl downloads (for validation, `explain`, and the merge keys
client-side `apply` needs), and which checks request bodies for unknown
fields (fieldValidation=Strict/Warn).

Notation of a field's type:
  "string" "bool" "int32" "int64" "number"   primitives
  "time" "intstr" "quantity"                  kube's string-encoded scalars
  "any"                                       free-form: any value, not checked
  "Name"                                      another type of this table ("discovery.X"
                                              where two groups have a type X)
  "[T]"  a list of T     "{T}"  a map from string to T
A field may be a tuple (type, patch) where patch is "merge:<key>" (a list
merged by that key, as x-kubernetes-patch-merge-key), "merge" (a list of
strings merged as a set) or "replace"; list-map keys follow the merge key.

Every field a type has in Kubernetes 1.32 is listed, so that no valid manifest
is rejected; rarely written sub-structures (affinity, security contexts,
volume sources, probes' handlers' details...) are "any": they are accepted
as they are, not checked field by field.
"""
from __future__ import annotations

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
DISCOVERY = "io.k8s.api.discovery.v1."
AUTHENTICATION = "io.k8s.api.authentication.v1."
CERTIFICATES = "io.k8s.api.certificates.v1."
RBAC = "io.k8s.api.rbac.v1."
AUTHORIZATION = "io.k8s.api.authorization.v1."
APIEXTENSIONS = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."

# short name -> (definition prefix, {field: type}, required fields)
TYPES: dict[str, tuple[str, dict, tuple[str, ...]]] = {}


def _t(prefix: str, name: str, fields: dict, required: tuple[str, ...] = ()) -> None:
    TYPES[name] = (prefix, fields, required)


# ---- meta ------------------------------------------------------------------------
_t(META, "ObjectMeta", {
    "name": "string", "generateName": "string", "namespace": "string", "selfLink": "string", "uid": "string",
    "resourceVersion": "string", "generation": "int64", "creationTimestamp": "time",
    "deletionTimestamp": "time", "deletionGracePeriodSeconds": "int64", "labels": "{string}",
    "annotations": "{string}", "ownerReferences": ("[OwnerReference]", "merge:uid"),
    "finalizers": ("[string]", "merge"), "managedFields": "[any]"})
_t(META, "OwnerReference", {"apiVersion": "string", "kind": "string", "name": "string", "uid": "string",
                            "controller": "bool", "blockOwnerDeletion": "bool"},
   ("apiVersion", "kind", "name", "uid"))
_t(META, "LabelSelector", {"matchLabels": "{string}", "matchExpressions": "[LabelSelectorRequirement]"})
_t(META, "LabelSelectorRequirement", {"key": "string", "operator": "string", "values": "[string]"},
   ("key", "operator"))

# ---- core: shared ----------------------------------------------------------------
_t(CORE, "ObjectReference", {"kind": "string", "namespace": "string", "name": "string", "uid": "string",
                             "apiVersion": "string", "resourceVersion": "string", "fieldPath": "string"})
_t(CORE, "LocalObjectReference", {"name": "string"})

# ---- Pod --------------------------------------------------------------------------
_t(CORE, "ContainerPort", {"name": "string", "hostPort": "int32", "containerPort": "int32",
                           "protocol": "string", "hostIP": "string"}, ("containerPort",))
_t(CORE, "EnvVar", {"name": "string", "value": "string", "valueFrom": "any"}, ("name",))
_t(CORE, "VolumeMount", {"name": "string", "readOnly": "bool", "recursiveReadOnly": "string",
                         "mountPath": "string", "subPath": "string", "mountPropagation": "string",
                         "subPathExpr": "string"}, ("name", "mountPath"))
_t(CORE, "ResourceRequirements", {"limits": "{quantity}", "requests": "{quantity}", "claims": "[any]"})
_t(CORE, "ExecAction", {"command": "[string]"})
_t(CORE, "HTTPHeader", {"name": "string", "value": "string"}, ("name", "value"))
_t(CORE, "HTTPGetAction", {"path": "string", "port": "intstr", "host": "string", "scheme": "string",
                           "httpHeaders": "[HTTPHeader]"}, ("port",))
_t(CORE, "TCPSocketAction", {"port": "intstr", "host": "string"}, ("port",))
_t(CORE, "GRPCAction", {"port": "int32", "service": "string"}, ("port",))
_t(CORE, "Probe", {"exec": "ExecAction", "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction",
                   "grpc": "GRPCAction", "initialDelaySeconds": "int32", "timeoutSeconds": "int32",
                   "periodSeconds": "int32", "successThreshold": "int32", "failureThreshold": "int32",
                   "terminationGracePeriodSeconds": "int64"})
_CONTAINER = {
    "name": "string", "image": "string", "command": "[string]", "args": "[string]", "workingDir": "string",
    "ports": ("[ContainerPort]", "merge:containerPort"), "envFrom": "[any]", "env": ("[EnvVar]", "merge:name"),
    "resources": "ResourceRequirements", "resizePolicy": "[any]", "restartPolicy": "string",
    "volumeMounts": ("[VolumeMount]", "merge:mountPath"), "volumeDevices": ("[any]", "merge:devicePath"),
    "livenessProbe": "Probe", "readinessProbe": "Probe", "startupProbe": "Probe", "lifecycle": "any",
    "terminationMessagePath": "string", "terminationMessagePolicy": "string", "imagePullPolicy": "string",
    "securityContext": "any", "stdin": "bool", "stdinOnce": "bool", "tty": "bool"}
_t(CORE, "Container", _CONTAINER, ("name",))
_t(CORE, "EphemeralContainer", {**_CONTAINER, "targetContainerName": "string"}, ("name",))
_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image")
_t(CORE, "Volume", {"name": "string", **{s: "any" for s in _VOLUME_SOURCES}}, ("name",))
_t(CORE, "PodReadinessGate", {"conditionType": "string"}, ("conditionType",))
_t(CORE, "PodSpec", {
    "volumes": ("[Volume]", "merge:name"), "initContainers": ("[Container]", "merge:name"),
    "containers": ("[Container]", "merge:name"), "ephemeralContainers": ("[EphemeralContainer]", "merge:name"),
    "restartPolicy": "string", "terminationGracePeriodSeconds": "int64", "activeDeadlineSeconds": "int64",
    "dnsPolicy": "string", "nodeSelector": "{string}", "serviceAccountName": "string",
    "serviceAccount": "string", "automountServiceAccountToken": "bool", "nodeName": "string",
    "hostNetwork": "bool", "hostPID": "bool", "hostIPC": "bool", "shareProcessNamespace": "bool",
    "securityContext": "any", "imagePullSecrets": ("[LocalObjectReference]", "merge:name"),
    "hostname": "string", "subdomain": "string", "affinity": "any", "schedulerName": "string",
    "tolerations": "[any]", "hostAliases": ("[any]", "merge:ip"), "priorityClassName": "string",
    "priority": "int32", "dnsConfig": "any", "readinessGates": "[PodReadinessGate]",
    "runtimeClassName": "string", "enableServiceLinks": "bool", "preemptionPolicy": "string",
    "overhead": "{quantity}", "topologySpreadConstraints": ("[any]", "merge:topologyKey"),
    "setHostnameAsFQDN": "bool", "os": "any", "hostUsers": "bool", "schedulingGates": ("[any]", "merge:name"),
    "resourceClaims": ("[any]", "merge:name"), "resources": "ResourceRequirements"}, ("containers",))
_t(CORE, "PodIP", {"ip": "string"})
_t(CORE, "PodStatus", {
    "phase": "string", "conditions": ("[any]", "merge:type"), "message": "string", "reason": "string",
    "nominatedNodeName": "string", "hostIP": "string", "hostIPs": "[any]", "podIP": "string",
    "podIPs": ("[PodIP]", "merge:ip"), "startTime": "time", "initContainerStatuses": "[any]",
    "containerStatuses": "[any]", "qosClass": "string", "ephemeralContainerStatuses": "[any]",
    "resize": "string", "resourceClaimStatuses": ("[any]", "merge:name")})
_t(CORE, "PodTemplateSpec", {"metadata": "ObjectMeta", "spec": "PodSpec"})

# ---- Service, Endpoints ----------------------------------------------------------------
_t(CORE, "ServicePort", {"name": "string", "protocol": "string", "appProtocol": "string", "port": "int32",
                         "targetPort": "intstr", "nodePort": "int32"}, ("port",))
_t(CORE, "SessionAffinityConfig", {"clientIP": "ClientIPConfig"})
_t(CORE, "ClientIPConfig", {"timeoutSeconds": "int32"})
_t(CORE, "ServiceSpec", {
    "ports": ("[ServicePort]", "merge:port"), "selector": "{string}", "clusterIP": "string",
    "clusterIPs": "[string]", "type": "string", "externalIPs": "[string]", "sessionAffinity": "string",
    "loadBalancerIP": "string", "loadBalancerSourceRanges": "[string]", "externalName": "string",
    "externalTrafficPolicy": "string", "healthCheckNodePort": "int32", "publishNotReadyAddresses": "bool",
    "sessionAffinityConfig": "SessionAffinityConfig", "ipFamilies": "[string]", "ipFamilyPolicy": "string",
    "allocateLoadBalancerNodePorts": "bool", "loadBalancerClass": "string", "internalTrafficPolicy": "string",
    "trafficDistribution": "string"})
_t(CORE, "LoadBalancerIngress", {"ip": "string", "hostname": "string", "ipMode": "string", "ports": "[any]"})
_t(CORE, "LoadBalancerStatus", {"ingress": "[LoadBalancerIngress]"})
_t(CORE, "ServiceStatus", {"loadBalancer": "LoadBalancerStatus", "conditions": ("[any]", "merge:type")})
_t(CORE, "EndpointAddress", {"ip": "string", "hostname": "string", "nodeName": "string",
                             "targetRef": "ObjectReference"}, ("ip",))
_t(CORE, "EndpointPort", {"name": "string", "port": "int32", "protocol": "string", "appProtocol": "string"},
   ("port",))
_t(CORE, "EndpointSubset", {"addresses": "[EndpointAddress]", "notReadyAddresses": "[EndpointAddress]",
                            "ports": "[EndpointPort]"})

# ---- ReplicationController ---------------------------------------------------------------
_t(CORE, "ReplicationControllerSpec", {"replicas": "int32", "minReadySeconds": "int32", "selector": "{string}",
                                       "template": "PodTemplateSpec"})
_t(CORE, "ReplicationControllerCondition", {"type": "string", "status": "string", "lastTransitionTime": "time",
                                            "reason": "string", "message": "string"}, ("type", "status"))
_t(CORE, "ReplicationControllerStatus", {
    "replicas": "int32", "fullyLabeledReplicas": "int32", "readyReplicas": "int32", "availableReplicas": "int32",
    "observedGeneration": "int64", "conditions": ("[ReplicationControllerCondition]", "merge:type")},
   ("replicas",))

# ---- Namespace, Node, Event ---------------------------------------------------------------
_t(CORE, "NamespaceSpec", {"finalizers": "[string]"})
_t(CORE, "NamespaceStatus", {"phase": "string", "conditions": ("[any]", "merge:type")})
_t(CORE, "NodeSpec", {"podCIDR": "string", "podCIDRs": ("[string]", "merge"), "providerID": "string",
                      "unschedulable": "bool", "taints": "[any]", "configSource": "any", "externalID": "string"})
_t(CORE, "NodeAddress", {"type": "string", "address": "string"}, ("type", "address"))
_t(CORE, "NodeSystemInfo", {
    "machineID": "string", "systemUUID": "string", "bootID": "string", "kernelVersion": "string",
    "osImage": "string", "containerRuntimeVersion": "string", "kubeletVersion": "string",
    "kubeProxyVersion": "string", "operatingSystem": "string", "architecture": "string", "swap": "any"})
_t(CORE, "NodeStatus", {
    "capacity": "{quantity}", "allocatable": "{quantity}", "phase": "string",
    "conditions": ("[any]", "merge:type"), "addresses": ("[NodeAddress]", "merge:type"),
    "daemonEndpoints": "any", "nodeInfo": "NodeSystemInfo", "images": "[any]", "volumesInUse": "[string]",
    "volumesAttached": "[any]", "config": "any", "runtimeHandlers": "[any]", "features": "any"})
_t(CORE, "EventSource", {"component": "string", "host": "string"})
_t(CORE, "EventSeries", {"count": "int32", "lastObservedTime": "time"})

# ---- apps ------------------------------------------------------------------------------------
_t(APPS, "RollingUpdateDeployment", {"maxUnavailable": "intstr", "maxSurge": "intstr"})
_t(APPS, "DeploymentStrategy", {"type": "string", "rollingUpdate": "RollingUpdateDeployment"})
_t(APPS, "DeploymentSpec", {
    "replicas": "int32", "selector": "LabelSelector", "template": "PodTemplateSpec",
    "strategy": ("DeploymentStrategy", "retainKeys"), "minReadySeconds": "int32",
    "revisionHistoryLimit": "int32", "paused": "bool", "progressDeadlineSeconds": "int32"},
   ("selector", "template"))
_t(APPS, "DeploymentStatus", {
    "observedGeneration": "int64", "replicas": "int32", "updatedReplicas": "int32", "readyReplicas": "int32",
    "availableReplicas": "int32", "unavailableReplicas": "int32", "terminatingReplicas": "int32",
    "conditions": ("[any]", "merge:type"), "collisionCount": "int32"})
_t(APPS, "ReplicaSetSpec", {"replicas": "int32", "minReadySeconds": "int32", "selector": "LabelSelector",
                            "template": "PodTemplateSpec"}, ("selector",))
_t(APPS, "ReplicaSetStatus", {
    "replicas": "int32", "fullyLabeledReplicas": "int32", "readyReplicas": "int32", "availableReplicas": "int32",
    "terminatingReplicas": "int32", "observedGeneration": "int64", "conditions": ("[any]", "merge:type")},
   ("replicas",))

# ---- discovery.k8s.io ----------------------------------------------------------------------
_t(DISCOVERY, "EndpointConditions", {"ready": "bool", "serving": "bool", "terminating": "bool"})
_t(DISCOVERY, "Endpoint", {"addresses": "[string]", "conditions": "EndpointConditions", "hostname": "string",
                           "targetRef": "ObjectReference", "deprecatedTopology": "{string}", "nodeName": "string",
                           "zone": "string", "hints": "any"}, ("addresses",))
_t(DISCOVERY, "discovery.EndpointPort", {"name": "string", "protocol": "string", "port": "int32", "appProtocol": "string"})

# ---- certificates.k8s.io ------------------------------------------------------------
_t(CERTIFICATES, "CertificateSigningRequestSpec", {
    "request": "string", "signerName": "string", "expirationSeconds": "int32", "usages": "[string]",
    "username": "string", "uid": "string", "groups": "[string]", "extra": "{any}"}, ("request", "signerName"))
_t(CERTIFICATES, "CertificateSigningRequestCondition", {
    "type": "string", "status": "string", "reason": "string", "message": "string", "lastUpdateTime": "time",
    "lastTransitionTime": "time"}, ("type", "status"))
_t(CERTIFICATES, "CertificateSigningRequestStatus", {
    "conditions": "[CertificateSigningRequestCondition]", "certificate": "string"})

# ---- the kinds (top-level objects): kind -> (prefix, fields, required) -------------------------
_TOP = {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta"}
KIND_TYPES: dict[str, tuple[str, dict, tuple[str, ...]]] = {
    "Namespace": (CORE, {**_TOP, "spec": "NamespaceSpec", "status": "NamespaceStatus"}, ()),
    "Node": (CORE, {**_TOP, "spec": "NodeSpec", "status": "NodeStatus"}, ()),
    "Pod": (CORE, {**_TOP, "spec": "PodSpec", "status": "PodStatus"}, ()),
    "Service": (CORE, {**_TOP, "spec": "ServiceSpec", "status": "ServiceStatus"}, ()),
    "Endpoints": (CORE, {**_TOP, "subsets": "[EndpointSubset]"}, ()),
    "Event": (CORE, {**_TOP, "involvedObject": "ObjectReference", "reason": "string", "message": "string",
                     "source": "EventSource", "firstTimestamp": "time", "lastTimestamp": "time",
                     "count": "int32", "type": "string", "eventTime": "time", "series": "EventSeries",
                     "action": "string", "related": "ObjectReference", "reportingComponent": "string",
                     "reportingInstance": "string"}, ("metadata", "involvedObject")),
    "EndpointSlice": (DISCOVERY, {**_TOP, "addressType": "string",
                                  "endpoints": ("[Endpoint]", "replace"), "ports": ("[discovery.EndpointPort]", "replace")},
                      ("addressType", "endpoints")),
    "Deployment": (APPS, {**_TOP, "spec": "DeploymentSpec", "status": "DeploymentStatus"}, ()),
    "ReplicaSet": (APPS, {**_TOP, "spec": "ReplicaSetSpec", "status": "ReplicaSetStatus"}, ()),
    "ReplicationController": (CORE, {**_TOP, "spec": "ReplicationControllerSpec",
                                     "status": "ReplicationControllerStatus"}, ()),
    "CertificateSigningRequest": (CERTIFICATES, {**_TOP, "spec": "CertificateSigningRequestSpec",
                                                 "status": "CertificateSigningRequestStatus"}, ("spec",)),
}


# ---- configuration and identity: ConfigMap, Secret, ServiceAccount, authentication.k8s.io ----
_t(AUTHENTICATION, "BoundObjectReference", {"kind": "string", "apiVersion": "string", "name": "string",
                                            "uid": "string"})
_t(AUTHENTICATION, "TokenRequestSpec", {"audiences": "[string]", "expirationSeconds": "int64",
                                        "boundObjectRef": "BoundObjectReference"}, ("audiences",))
_t(AUTHENTICATION, "TokenRequestStatus", {"token": "string", "expirationTimestamp": "time"},
   ("token", "expirationTimestamp"))
_t(AUTHENTICATION, "TokenRequest", {**_TOP, "spec": "TokenRequestSpec", "status": "TokenRequestStatus"}, ("spec",))
_t(AUTHENTICATION, "UserInfo", {"username": "string", "uid": "string", "groups": "[string]",
                                "extra": "{[string]}"})
_t(AUTHENTICATION, "SelfSubjectReviewStatus", {"userInfo": "UserInfo"})
KIND_TYPES.update({
    "ConfigMap": (CORE, {**_TOP, "immutable": "bool", "data": "{string}", "binaryData": "{string}"}, ()),
    "Secret": (CORE, {**_TOP, "immutable": "bool", "data": "{string}", "stringData": "{string}",
                      "type": "string"}, ()),
    "ServiceAccount": (CORE, {**_TOP, "secrets": ("[ObjectReference]", "merge:name"),
                              "imagePullSecrets": "[LocalObjectReference]",
                              "automountServiceAccountToken": "bool"}, ()),
    "SelfSubjectReview": (AUTHENTICATION, {**_TOP, "status": "SelfSubjectReviewStatus"}, ()),
    # checked by agent/apiserver/crd/definition.py, not field by field here
    "CustomResourceDefinition": (APIEXTENSIONS, {**_TOP, "spec": "any", "status": "any"}, ("spec",)),
})


# ---- access control: rbac.authorization.k8s.io, authorization.k8s.io ----
_t(RBAC, "PolicyRule", {"verbs": "[string]", "apiGroups": "[string]", "resources": "[string]",
                        "resourceNames": "[string]", "nonResourceURLs": "[string]"}, ("verbs",))
_t(RBAC, "AggregationRule", {"clusterRoleSelectors": "[LabelSelector]"})
_t(RBAC, "Subject", {"kind": "string", "apiGroup": "string", "name": "string", "namespace": "string"},
   ("kind", "name"))
_t(RBAC, "RoleRef", {"apiGroup": "string", "kind": "string", "name": "string"}, ("apiGroup", "kind", "name"))
_t(AUTHORIZATION, "ResourceAttributes", {
    "namespace": "string", "verb": "string", "group": "string", "version": "string", "resource": "string",
    "subresource": "string", "name": "string", "fieldSelector": "any", "labelSelector": "any"})
_t(AUTHORIZATION, "NonResourceAttributes", {"path": "string", "verb": "string"})
_t(AUTHORIZATION, "SelfSubjectAccessReviewSpec", {"resourceAttributes": "ResourceAttributes",
                                                  "nonResourceAttributes": "NonResourceAttributes"})
_t(AUTHORIZATION, "SubjectAccessReviewSpec", {
    "resourceAttributes": "ResourceAttributes", "nonResourceAttributes": "NonResourceAttributes",
    "user": "string", "groups": "[string]", "extra": "{[string]}", "uid": "string"})
_t(AUTHORIZATION, "SubjectAccessReviewStatus", {"allowed": "bool", "denied": "bool", "reason": "string",
                                                "evaluationError": "string"}, ("allowed",))
_t(AUTHORIZATION, "SelfSubjectRulesReviewSpec", {"namespace": "string"})
_t(AUTHORIZATION, "ResourceRule", {"verbs": "[string]", "apiGroups": "[string]", "resources": "[string]",
                                   "resourceNames": "[string]"}, ("verbs",))
_t(AUTHORIZATION, "NonResourceRule", {"verbs": "[string]", "nonResourceURLs": "[string]"}, ("verbs",))
_t(AUTHORIZATION, "SubjectRulesReviewStatus", {"resourceRules": "[ResourceRule]",
                                               "nonResourceRules": "[NonResourceRule]", "incomplete": "bool",
                                               "evaluationError": "string"},
   ("resourceRules", "nonResourceRules", "incomplete"))
_BINDING = {**_TOP, "subjects": "[Subject]", "roleRef": "RoleRef"}
_SAR = {**_TOP, "spec": "SubjectAccessReviewSpec", "status": "SubjectAccessReviewStatus"}
KIND_TYPES.update({
    "Role": (RBAC, {**_TOP, "rules": "[PolicyRule]"}, ()),
    "ClusterRole": (RBAC, {**_TOP, "rules": "[PolicyRule]", "aggregationRule": "AggregationRule"}, ()),
    "RoleBinding": (RBAC, _BINDING, ("roleRef",)),
    "ClusterRoleBinding": (RBAC, _BINDING, ("roleRef",)),
    "SelfSubjectAccessReview": (AUTHORIZATION, {**_TOP, "spec": "SelfSubjectAccessReviewSpec",
                                                "status": "SubjectAccessReviewStatus"}, ("spec",)),
    "SelfSubjectRulesReview": (AUTHORIZATION, {**_TOP, "spec": "SelfSubjectRulesReviewSpec",
                                               "status": "SubjectRulesReviewStatus"}, ("spec",)),
    "SubjectAccessReview": (AUTHORIZATION, _SAR, ("spec",)),
    "LocalSubjectAccessReview": (AUTHORIZATION, _SAR, ("spec",)),
})


def full_name(short: str) -> str:
    """'Service' -> 'io.k8s.api.core.v1.Service' (a kind or a TYPES entry)."""
    if short in KIND_TYPES:
        return KIND_TYPES[short][0] + short
    return TYPES[short][0] + short.rsplit(".", 1)[-1]


def fields_of(short: str) -> dict:
    return KIND_TYPES[short][1] if short in KIND_TYPES else TYPES[short][1]


def required_of(short: str) -> tuple[str, ...]:
    return KIND_TYPES[short][2] if short in KIND_TYPES else TYPES[short][2]


# ---- StatefulSet, ControllerRevision, DaemonSet (apps) and Job, CronJob (batch) ----------
BATCH = "io.k8s.api.batch.v1."
_t(CORE, "PersistentVolumeClaim", {**_TOP, "spec": "any", "status": "any"})
_t(APPS, "RollingUpdateStatefulSetStrategy", {"partition": "int32", "maxUnavailable": "intstr"})
_t(APPS, "StatefulSetUpdateStrategy", {"type": "string", "rollingUpdate": "RollingUpdateStatefulSetStrategy"})
_t(APPS, "StatefulSetSpec", {
    "replicas": "int32", "selector": "LabelSelector", "template": "PodTemplateSpec",
    "volumeClaimTemplates": "[PersistentVolumeClaim]", "serviceName": "string", "podManagementPolicy": "string",
    "updateStrategy": "StatefulSetUpdateStrategy", "revisionHistoryLimit": "int32", "minReadySeconds": "int32",
    "persistentVolumeClaimRetentionPolicy": "any", "ordinals": "any"}, ("selector", "template"))
_t(APPS, "StatefulSetStatus", {
    "observedGeneration": "int64", "replicas": "int32", "readyReplicas": "int32", "currentReplicas": "int32",
    "updatedReplicas": "int32", "currentRevision": "string", "updateRevision": "string", "collisionCount": "int32",
    "conditions": ("[any]", "merge:type"), "availableReplicas": "int32"}, ("replicas",))
_t(APPS, "RollingUpdateDaemonSet", {"maxUnavailable": "intstr", "maxSurge": "intstr"})
_t(APPS, "DaemonSetUpdateStrategy", {"type": "string", "rollingUpdate": "RollingUpdateDaemonSet"})
_t(APPS, "DaemonSetSpec", {"selector": "LabelSelector", "template": "PodTemplateSpec",
                           "updateStrategy": "DaemonSetUpdateStrategy", "minReadySeconds": "int32",
                           "revisionHistoryLimit": "int32"}, ("selector", "template"))
_t(APPS, "DaemonSetStatus", {
    "currentNumberScheduled": "int32", "numberMisscheduled": "int32", "desiredNumberScheduled": "int32",
    "numberReady": "int32", "observedGeneration": "int64", "updatedNumberScheduled": "int32",
    "numberAvailable": "int32", "numberUnavailable": "int32", "collisionCount": "int32",
    "conditions": ("[any]", "merge:type")},
   ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"))
_t(BATCH, "JobSpec", {
    "parallelism": "int32", "completions": "int32", "activeDeadlineSeconds": "int64", "podFailurePolicy": "any",
    "successPolicy": "any", "backoffLimit": "int32", "backoffLimitPerIndex": "int32", "maxFailedIndexes": "int32",
    "selector": "LabelSelector", "manualSelector": "bool", "template": "PodTemplateSpec",
    "ttlSecondsAfterFinished": "int32", "completionMode": "string", "suspend": "bool",
    "podReplacementPolicy": "string", "managedBy": "string"}, ("template",))
_t(BATCH, "JobCondition", {"type": "string", "status": "string", "lastProbeTime": "time",
                           "lastTransitionTime": "time", "reason": "string", "message": "string"}, ("type", "status"))
_t(BATCH, "JobStatus", {
    "conditions": "[JobCondition]", "startTime": "time", "completionTime": "time", "active": "int32",
    "succeeded": "int32", "failed": "int32", "terminating": "int32", "completedIndexes": "string",
    "failedIndexes": "string", "uncountedTerminatedPods": "any", "ready": "int32"})
_t(BATCH, "JobTemplateSpec", {"metadata": "ObjectMeta", "spec": "JobSpec"})
_t(BATCH, "CronJobSpec", {
    "schedule": "string", "timeZone": "string", "startingDeadlineSeconds": "int64", "concurrencyPolicy": "string",
    "suspend": "bool", "jobTemplate": "JobTemplateSpec", "successfulJobsHistoryLimit": "int32",
    "failedJobsHistoryLimit": "int32"}, ("schedule", "jobTemplate"))
_t(BATCH, "CronJobStatus", {"active": "[ObjectReference]", "lastScheduleTime": "time",
                            "lastSuccessfulTime": "time"})
KIND_TYPES.update({
    "StatefulSet": (APPS, {**_TOP, "spec": "StatefulSetSpec", "status": "StatefulSetStatus"}, ()),
    "ControllerRevision": (APPS, {**_TOP, "data": "any", "revision": "int64"}, ("revision",)),
    "DaemonSet": (APPS, {**_TOP, "spec": "DaemonSetSpec", "status": "DaemonSetStatus"}, ()),
    "Job": (BATCH, {**_TOP, "spec": "JobSpec", "status": "JobStatus"}, ()),
    "CronJob": (BATCH, {**_TOP, "spec": "CronJobSpec", "status": "CronJobStatus"}, ()),
})


# ---- Ingress, IngressClass (networking.k8s.io) ---------------------------------------------------
NETWORKING = "io.k8s.api.networking.v1."
_t(NETWORKING, "ServiceBackendPort", {"name": "string", "number": "int32"})
_t(NETWORKING, "IngressServiceBackend", {"name": "string", "port": "ServiceBackendPort"}, ("name",))
_t(NETWORKING, "IngressBackend", {"service": "IngressServiceBackend", "resource": "any"})
_t(NETWORKING, "IngressTLS", {"hosts": "[string]", "secretName": "string"})
_t(NETWORKING, "HTTPIngressPath", {"path": "string", "pathType": "string", "backend": "IngressBackend"},
   ("pathType", "backend"))
_t(NETWORKING, "HTTPIngressRuleValue", {"paths": "[HTTPIngressPath]"}, ("paths",))
_t(NETWORKING, "IngressRule", {"host": "string", "http": "HTTPIngressRuleValue"})
_t(NETWORKING, "IngressSpec", {"ingressClassName": "string", "defaultBackend": "IngressBackend",
                               "tls": "[IngressTLS]", "rules": "[IngressRule]"})
_t(NETWORKING, "IngressPortStatus", {"port": "int32", "protocol": "string", "error": "string"},
   ("port", "protocol"))
_t(NETWORKING, "IngressLoadBalancerIngress", {"ip": "string", "hostname": "string", "ports": "[IngressPortStatus]"})
_t(NETWORKING, "IngressLoadBalancerStatus", {"ingress": "[IngressLoadBalancerIngress]"})
_t(NETWORKING, "IngressStatus", {"loadBalancer": "IngressLoadBalancerStatus"})
_t(NETWORKING, "IngressClassParametersReference", {"apiGroup": "string", "kind": "string", "name": "string",
                                                   "scope": "string", "namespace": "string"}, ("kind", "name"))
_t(NETWORKING, "IngressClassSpec", {"controller": "string", "parameters": "IngressClassParametersReference"})
KIND_TYPES.update({
    "Ingress": (NETWORKING, {**_TOP, "spec": "IngressSpec", "status": "IngressStatus"}, ()),
    "IngressClass": (NETWORKING, {**_TOP, "spec": "IngressClassSpec"}, ()),
})
