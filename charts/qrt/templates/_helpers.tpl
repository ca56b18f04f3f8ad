{{/* The release's base name. */}}
{{- define "qrt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's name: "<release>-<component>". Call with (list $ "gateway"). */}}
{{- define "qrt.name" -}}
{{- printf "%s-%s" (include "qrt.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a component's pods. Call with (list $ "gateway"). */}}
{{- define "qrt.selectorLabels" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Every label of a component's objects. Call with (list $ "gateway"). */}}
{{- define "qrt.labels" -}}
{{ include "qrt.selectorLabels" . }}
app.kubernetes.io/part-of: qrt
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ printf "%s-%s" (index . 0).Chart.Name (index . 0).Chart.Version }}
{{- end -}}

{{/* A container image reference. Call with a component's values. */}}
{{- define "qrt.image" -}}
{{- if contains "@" .image.tag -}}
{{ .image.repository }}:{{ .image.tag | trimSuffix "@" }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the broker and store URLs. */}}
{{- define "qrt.secretName" -}}
{{ include "qrt.name" (list . "urls") }}
{{- end -}}

{{/* The Secret holding the key pepper and the first admin's API key. */}}
{{- define "qrt.accountsSecretName" -}}
{{ .Values.accounts.existingSecret | default (include "qrt.name" (list . "accounts")) }}
{{- end -}}

{{/* Environment every qrt service shares. */}}
{{- define "qrt.commonEnv" -}}
- name: QRT_BUS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "qrt.secretName" . }}
      key: bus-url
- name: QRT_BUS_NAMESPACE
  value: {{ include "qrt.fullname" . | quote }}
- name: QRT_LOG_LEVEL
  value: {{ .Values.settings.logLevel | quote }}
- name: QRT_HEARTBEAT_INTERVAL
  value: {{ .Values.settings.heartbeatInterval | quote }}
- name: QRT_HEARTBEAT_TIMEOUT
  value: {{ .Values.settings.heartbeatTimeout | quote }}
- name: QRT_OPS_PORT
  value: {{ .Values.settings.opsPort | quote }}
{{- end -}}

{{/* The store URL, for the services that use the store. */}}
{{- define "qrt.storeEnv" -}}
- name: QRT_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "qrt.secretName" . }}
      key: store-url
{{- end -}}

{{/* Probes on a port's /healthz (liveness) and /readyz (readiness). Call with a port name. */}}
{{- define "qrt.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: {{ . }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: {{ . }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ . }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Pod-level settings every qrt pod shares. */}}
{{- define "qrt.podSpec" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
{{- end -}}
