{{/* Names and labels shared by every object of the chart. */}}

{{- define "verdant.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: "<release>-verdant", or just the release when it contains "verdant". */}}
{{- define "verdant.fullname" -}}
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

{{- define "verdant.operator.fullname" -}}
{{- printf "%s-operator" (include "verdant.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "verdant.agent.fullname" -}}
{{- printf "%s-agent" (include "verdant.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "verdant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "verdant.labels" -}}
helm.sh/chart: {{ include "verdant.chart" . }}
app.kubernetes.io/name: {{ include "verdant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: verdant
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "verdant.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verdant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "verdant.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verdant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "verdant.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "verdant.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "verdant.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "verdant.agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: repository:tag (tag defaults to the chart's appVersion), or repository@digest. */}}
{{- define "verdant.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's ingest URL as the agents reach it. */}}
{{- define "verdant.ingestURL" -}}
{{- if .Values.agent.operatorURL }}
{{- .Values.agent.operatorURL }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "verdant.operator.fullname" .) .Release.Namespace (int .Values.operator.ports.ingest) }}
{{- end }}
{{- end }}

{{/* The PersistentVolumeClaim of the SQLite database. */}}
{{- define "verdant.sqlite.claimName" -}}
{{- default (printf "%s-data" (include "verdant.operator.fullname" .)) .Values.database.sqlite.persistence.existingClaim }}
{{- end }}

{{/* The operator's replicas: as set with PostgreSQL, at most one with SQLite (one
ReadWriteOnce volume, one store). Several need leader election. */}}
{{- define "verdant.operator.replicas" -}}
{{- $replicas := int .Values.operator.replicas }}
{{- if eq .Values.database.type "sqlite" }}
{{- $replicas = min $replicas 1 }}
{{- end }}
{{- if and (gt $replicas 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: two operators without it would both place jobs" }}
{{- end }}
{{- $replicas }}
{{- end }}
