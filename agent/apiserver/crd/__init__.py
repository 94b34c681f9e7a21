"""CustomResourceDefinitions and the custom resources they serve.

- definition.py: the CRD kind's defaults, validation (structural schemas
  included) and status; `CustomKind`, one served version of a custom resource.
- schema.py: a structural schema applied to an object (defaults, pruning,
  validation with kube's messages).
- custom.py: custom objects in the registry (admission, generation, scale,
  printer columns).
- serving.py: their URLs, discovery, OpenAPI v3 and fieldValidation.
"""
