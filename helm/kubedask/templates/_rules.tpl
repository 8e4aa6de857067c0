{{/*
The controller's rules in a namespace it serves. Every rule says why it exists; anything not listed
(secrets, other kinds, other verbs) is forbidden, and tests/install prove it with `kubectl auth can-i`.
manifests/ holds the same rules; tests/install/test_install_chart.py keeps the two in step.
*/}}
{{- define "kubedask.controllerRules" -}}
# Requests: Kopf lists and watches the labelled ConfigMaps (with a server-side label selector); patch
# writes the status back; delete reaps a cluster whose client stopped renewing its heartbeat.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch, patch, delete]
# The scheduler and worker pods: listed and watched by label, read by name (is the scheduler still the
# one it created?), created and deleted to match requests.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# The scheduler's Service and PodDisruptionBudget: listed and watched by label (one deleted by hand is
# recreated), read and created; the Service is patched when the request changes its type. They go
# away with the request through their ownerReference; delete is for a finished batch job, whose
# cluster goes while its request (and the job pod's log) stays.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, delete]
# A finished batch job's log tail, quoted in the request's status.
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Events on requests, so `kubectl describe configmap NAME` explains what happened.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* The controller's rules in its own namespace, for leader election. */}}
{{- define "kubedask.leaderElectionRules" -}}
# The Lease in templates/leader-election.yaml. create is only used if someone deleted it, and
# cannot be limited to a name.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ include "kubedask.controllerName" . }}]
  verbs: [get, update]
{{- end }}

{{/* An end user's rules: what KubeCluster does on their behalf. */}}
{{- define "kubedask.userRules" -}}
# Requests: KubeCluster creates, scales (patch), renews the heartbeat of and deletes its ConfigMap,
# and reads its status.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
# Read-only views of the cluster's pods and Service: cluster.pods(), addresses, readiness.
- apiGroups: [""]
  resources: [pods, services]
  verbs: [get, list, watch]
# cluster.get_logs() / cluster.logs().
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Reaching the scheduler from outside the cluster through the API server. SPDY port-forwards (and
# WebSocket ones since Kubernetes 1.35) are authorized as create; older WebSocket ones as get.
- apiGroups: [""]
  resources: [pods/portforward]
  verbs: [get, create]
# Explaining a scheduler that does not start: the pod's and the request's events.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
{{- end }}
