"""The pinned versions of everything the local cluster is built from (one place to bump them).

Kubernetes and etcd are also pinned by the wrapper modules in gomod/; keep both in step.
"""

KUBERNETES = "v1.35.4"  # the newest minor that still runs on containerd 1.x and cgroup v1
ETCD = "v3.6.16"
KWOK = "v0.8.0"
COREDNS = "v1.14.7"
HELM = "v3.19.5"
