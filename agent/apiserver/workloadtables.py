"""Table column definitions of StatefulSet, ControllerRevision, DaemonSet,
Job and CronJob (cells: agent/api/workloadprinters.py), of Ingress and
IngressClass, and of PersistentVolumeClaim, as kube-apiserver declares them. Merged into agent/apiserver/tables.py."""
from __future__ import annotations

NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, although some "
            "resources may allow a client to request the generation of an appropriate name automatically. "
            "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
            "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
           "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
           "not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
           "Read-only. Null for lists. More info: "
           "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
_CONTAINERS = ("Containers", "string", 1, "Names of each container in the template.")
_IMAGES = ("Images", "string", 1, "Images referenced by each container in the template.")
_NAME = ("Name", "string", 0, NAME_DOC)
_AGE = ("Age", "string", 0, AGE_DOC)
_SELECTOR = ("Selector", "string", 1, ("A label query over pods that should match the pod count. Normally, the "
                                      "system sets this field for you. More info: https://kubernetes.io/docs/"
                                      "concepts/overview/working-with-objects/labels/#label-selectors"))

COLUMNS = {
    "StatefulSet": (_NAME, ("Ready", "string", 0, "Number of the pod with ready state"), _AGE, _CONTAINERS, _IMAGES),
    "ControllerRevision": (_NAME, ("Controller", "string", 0, "Controller of the object"),
                           ("Revision", "string", 0, "Revision indicates the revision of the state represented by "
                                                     "Data."), _AGE),
    "DaemonSet": (_NAME,
                  ("Desired", "integer", 0, ("The total number of nodes that should be running the daemon pod "
                                            "(including nodes correctly running the daemon pod).")),
                  ("Current", "integer", 0, ("The number of nodes that are running at least 1 daemon pod and are "
                                            "supposed to run the daemon pod.")),
                  ("Ready", "integer", 0, ("numberReady is the number of nodes that should be running the daemon "
                                          "pod and have one or more of the daemon pod running with a Ready "
                                          "Condition.")),
                  ("Up-to-date", "integer", 0, ("The total number of nodes that are running updated daemon pod")),
                  ("Available", "integer", 0, ("The number of nodes that should be running the daemon pod and have "
                                              "one or more of the daemon pod running and available (ready for at "
                                              "least spec.minReadySeconds)")),
                  ("Node Selector", "string", 0, ("NodeSelector is a selector which must be true for the pod to "
                                                 "fit on a node. Selector which must match a node's labels for "
                                                 "the pod to be scheduled on that node. More info: "
                                                 "https://kubernetes.io/docs/concepts/configuration/"
                                                 "assign-pod-node/")),
                  _AGE, _CONTAINERS, _IMAGES, _SELECTOR),
    "Job": (_NAME, ("Status", "string", 0, "Status of the job."),
            ("Completions", "string", 0, "The completion status of the job."),
            ("Duration", "string", 0, "Time required to complete the job."), _AGE, _CONTAINERS, _IMAGES, _SELECTOR),
    "CronJob": (_NAME,
                ("Schedule", "string", 0, ("The schedule in Cron format, see "
                                          "https://en.wikipedia.org/wiki/Cron.")),
                ("Timezone", "string", 0, ("The time zone name for the given schedule, see "
                                          "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.")),
                ("Suspend", "boolean", 0, ("This flag tells the controller to suspend subsequent executions, it "
                                          "does not apply to already started executions.  Defaults to false.")),
                ("Active", "integer", 0, "A list of pointers to currently running jobs."),
                ("Last Schedule", "string", 0, "Information when was the last time the job was successfully "
                                               "scheduled."),
                _AGE, _CONTAINERS, _IMAGES, _SELECTOR),
}

# Ingress and IngressClass (networking.k8s.io; cells: agent/api/ingressprinters.py).
COLUMNS.update({
    "Ingress": (_NAME, ("Class", "string", 0, "The name of the IngressClass resource that should be used"),
                ("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
                ("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
                ("Ports", "string", 0, "Ports of TLS configurations that open"), _AGE),
    "IngressClass": (_NAME, ("Controller", "string", 0, "Controller that is responsible for handling this class"),
                     ("Parameters", "string", 0, "A reference to a resource with additional parameters"), _AGE),
})

# PersistentVolumeClaim (cells: agent/api/storageprinters.py).
COLUMNS["PersistentVolumeClaim"] = (
    _NAME, ("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
    ("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
    ("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
    ("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has. "
                                  "More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes"
                                  "#access-modes-1"),
    ("StorageClass", "string", 0, "StorageClass of the pvc"),
    ("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pvc"), _AGE,
    ("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim. Value of "
                                "Filesystem is implied when not included in claim spec."))
