"""kubedask's local Kubernetes: built from source, run as host processes, for development, tests and the demo.

Run ``python -m devcluster --help``. The control plane and KWOK-simulated nodes always run; a real node
(containerd, kubelet, kube-proxy, CoreDNS) runs unless ``--no-real-node`` is given.
"""
