"""Server-side apply and managedFields (kube-apiserver's field manager).

- fieldset.py: field paths and their FieldsV1 encoding.
- schema.py: how each field merges (list-maps and keys, sets, atomics, maps).
- managed.py: managedFields bookkeeping for updates, and apply with conflicts.
- context.py: the request's field manager, and the registry's hook that
  stamps managedFields on every write.
"""
