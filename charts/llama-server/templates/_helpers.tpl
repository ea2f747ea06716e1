{{/* Names, labels and the image reference of the llama-server release. */}}

{{- define "llama-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llama-server.fullname" -}}
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

{{- define "llama-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llama-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llama-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llama-server.labels" -}}
helm.sh/chart: {{ include "llama-server.chart" . }}
{{ include "llama-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: inference
{{- with .Values.servefit.gpuClass }}
servefit.io/gpu-class: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "llama-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llama-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag llama.cpp publishes for a backend: server-b11312 (CPU), server-cuda-b11312, ... */}}
{{- define "llama-server.imageTag" -}}
{{- if .Values.image.tag }}
{{- .Values.image.tag }}
{{- else }}
{{- $variant := get (dict "cpu" "" "cuda12" "-cuda" "cuda13" "-cuda13" "rocm" "-rocm" "vulkan" "-vulkan") .Values.backend }}
{{- printf "server%s-%s" $variant .Values.image.build }}
{{- end }}
{{- end }}

{{- define "llama-server.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository (include "llama-server.imageTag" .) .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "llama-server.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The -hf reference llama.cpp downloads and then serves offline: REPO:QUANT */}}
{{- define "llama-server.hfRef" -}}
{{- if .Values.model.quant }}
{{- printf "%s:%s" .Values.model.hfRepo .Values.model.quant }}
{{- else }}
{{- .Values.model.hfRepo }}
{{- end }}
{{- end }}

{{- define "llama-server.cacheClaim" -}}
{{- default (printf "%s-models" (include "llama-server.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{- define "llama-server.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "llama-server.fullname" .)) .Values.apiKey.existingSecret }}
{{- end }}
