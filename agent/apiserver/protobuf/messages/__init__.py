"""The message tables, one module per Kubernetes API group (core/v1 split in four).

Data only: see schema.py for the format and how it is compiled.
"""
from . import (apps, authentication, authorization, autoscaling, batch, certificates, core, core_container, core_pod, core_volume,
               discovery, meta, networking, policy, rbac, scheduling)

MODULES = (meta, core, core_pod, core_container, core_volume, apps, batch, discovery, networking, rbac, policy,
           scheduling, authentication, authorization, autoscaling, certificates)
