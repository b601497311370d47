{{/* Names, labels and shared snippets. */}}

{{- define "mcpgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcpgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "mcpgate.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "mcpgate.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mcpgate.issuerName" -}}{{ include "mcpgate.fullname" . | trunc 56 | trimSuffix "-" }}-issuer{{- end -}}
{{- define "mcpgate.verifierName" -}}{{ include "mcpgate.fullname" . | trunc 54 | trimSuffix "-" }}-verifier{{- end -}}

{{- define "mcpgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mcpgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mcpgate.selector" -}}
app.kubernetes.io/name: {{ include "mcpgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mcpgate.image" -}}
{{- $img := index .root.Values.image .component -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The chart's own Secret (only when something inline needs storing). */}}
{{- define "mcpgate.secretName" -}}{{ include "mcpgate.fullname" . }}-secrets{{- end -}}

{{/* The issuer identifier: issuer.url, else the issuer's in-cluster Service URL. */}}
{{- define "mcpgate.issuerUrl" -}}
{{- if .Values.issuer.url -}}
{{- .Values.issuer.url | trimSuffix "/" -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%v" (include "mcpgate.issuerName" .) .Release.Namespace .Values.issuer.service.port -}}
{{- end -}}
{{- end -}}

{{/* issuer.protectedResources as JSON, else the `mcpgate dev` resource (to try the chart out). */}}
{{- define "mcpgate.protectedResources" -}}
{{- if .Values.issuer.protectedResources -}}
{{- toJson .Values.issuer.protectedResources -}}
{{- else -}}
{{- toJson (list (dict "resource" "http://127.0.0.1:8081/mcp" "scopes" (list "mcp:tools" "mcp:resources" "mcp:prompts"))) -}}
{{- end -}}
{{- end -}}

{{/* The environment variable carrying a provider's client secret. */}}
{{- define "mcpgate.providerSecretEnv" -}}
{{- $id := default (ternary "local" .kind (eq .kind "static")) .id -}}
MCPGW_ISSUER_PROVIDER_{{ $id | upper | replace "-" "_" }}_CLIENT_SECRET
{{- end -}}

{{/* An EnvVar whose value comes from the Redis URL Secret. */}}
{{- define "mcpgate.redisEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- if .root.Values.redis.existingSecret }}
      name: {{ .root.Values.redis.existingSecret }}
      key: {{ .root.Values.redis.existingSecretKey }}
      {{- else }}
      name: {{ include "mcpgate.secretName" .root }}
      key: redis-url
      {{- end }}
{{- end -}}

{{- define "mcpgate.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* A TOML value: strings quoted, lists as arrays, the rest as is. */}}
{{- define "mcpgate.toml" -}}
{{- if kindIs "string" . -}}
{{ . | toJson }}
{{- else if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "mcpgate.toml" $v }}{{ end }}]
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}

{{/* Signing key files mounted at /etc/mcpgate/keys: "existing", "inline" or "". */}}
{{- define "mcpgate.signingKeys" -}}
{{- if .Values.issuer.signing.existingSecret -}}existing
{{- else if .Values.issuer.signing.key -}}inline
{{- else if .Values.issuer.signing.nextKey -}}
{{- fail "issuer.signing.nextKey needs issuer.signing.key" -}}
{{- end -}}
{{- end -}}
