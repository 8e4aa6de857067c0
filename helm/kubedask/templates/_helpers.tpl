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

{{/* Namespaces the controller serves (a list), when not cluster-wide. */}}
{{- define "kubedask.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson (uniq .Values.watchNamespaces) }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
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
