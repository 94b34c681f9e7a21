"""RBAC, as kube-apiserver does it (rbac.authorization.k8s.io/v1).

    rules.py          PolicyRule matching, covering, kube's compact rule strings (pure)
    authorizer.py     the RBAC authorizer over the store's Roles and bindings
    node.py           the Node authorizer: what system:node:<name> may read and write
    policy.py         the default ClusterRoles and ClusterRoleBindings
    reconcile.py      putting the defaults in place at every start (autoupdate)
    escalation.py     the escalate and bind checks on writes of Roles and bindings
    impersonation.py  Impersonate-User/Group/Uid/Extra (kubectl --as)
    reviews.py        SelfSubjectAccessReview, SelfSubjectRulesReview, (Local)SubjectAccessReview

agent/apiserver/authz.py chains them (system:masters, Node, RBAC) for the
request path; the aggregation of ClusterRoles is a controller
(agent/controllers/clusterroleaggregation.py).
"""
