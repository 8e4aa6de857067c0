{{/* The chart name, overridable. */}}
{{- define "kubedask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name: the release name, plus the chart name unless it's in there. */}}
{{- define "kubedask.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubedask.controllerName" -}}
{{- printf "%s-controller" (include "kubedask.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubedask.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubedask.controllerName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Namespaces the controller serves (a JSON list; empty when it serves all namespaces). Never the release
namespace: the policy ConfigMap and the Lease live there, and a user who may write ConfigMaps where
the controller serves must not be able to rewrite the policy that binds them.
*/}}
{{- define "kubedask.watchNamespaces" -}}
{{- $ns := .Release.Namespace }}
{{- $watched := .Values.watchNamespaces | default list | uniq }}
{{- if .Values.allNamespaces }}
{{- if not (or (empty $watched) (eq (toJson $watched) (toJson (list "default")))) }}
{{- fail (printf "allNamespaces=true serves every namespace (except %s), so watchNamespaces=%s would be ignored: leave watchNamespaces at its default or set it to []." $ns (toJson $watched)) }}
{{- end }}
{{- toJson list }}
{{- else }}
{{- if empty $watched }}
{{- fail "watchNamespaces is empty: list the namespaces where users run Dask clusters (e.g. --set 'watchNamespaces={team-a}'), or set allNamespaces=true." }}
{{- end }}
{{- if has $ns $watched }}
{{- fail (printf "watchNamespaces lists %s, the release namespace. The controller never serves its own namespace: its policy ConfigMap and Lease live there, and users who may write ConfigMaps in a served namespace could rewrite the policy. Install the chart into a namespace of its own (helm install ... -n kubedask --create-namespace) or remove %s from watchNamespaces." $ns $ns) }}
{{- end }}
{{- toJson $watched }}
{{- end }}
{{- end }}

{{- define "kubedask.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Labels on every object of this release. */}}
{{- define "kubedask.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubedask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubedask
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels on the controller's objects. */}}
{{- define "kubedask.labels" -}}
{{ include "kubedask.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The controller pods' identity: stable across upgrades (Deployment selectors are immutable). */}}
{{- define "kubedask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubedask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}
