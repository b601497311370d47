{{/* The entries of the chart's Secret (empty: no Secret). */}}
{{- define "mcpgate.secretData" -}}
{{- $root := . -}}
{{- if and .Values.redis.url (not .Values.redis.existingSecret) }}
redis-url: {{ .Values.redis.url | quote }}
{{- end }}
{{- if and .Values.issuer.enabled .Values.issuer.adminToken.value (not .Values.issuer.adminToken.existingSecret) }}
admin-token: {{ .Values.issuer.adminToken.value | quote }}
{{- end }}
{{- if .Values.issuer.enabled }}
{{- range $i, $p := .Values.issuer.providers }}
{{- if and $p.clientSecret (not $p.existingSecret) }}
provider-{{ $i }}-client-secret: {{ $p.clientSecret | quote }}
{{- end }}
{{- end }}
{{- if eq (include "mcpgate.signingKeys" $root) "inline" }}
signing-key.pem: |
  {{- .Values.issuer.signing.key | trim | nindent 2 }}
{{- with .Values.issuer.signing.nextKey }}
next-signing-key.pem: |
  {{- . | trim | nindent 2 }}
{{- end }}
{{- end }}
issuer.toml: |
  {{- include "mcpgate.issuerToml" $root | nindent 2 }}
{{- end }}
{{- if and .Values.verifier.enabled .Values.verifier.routes }}
verifier.toml: |
  {{- range .Values.verifier.routes }}
  [[routes]]
  {{- range $k, $v := . }}
  {{- if eq $k "tool_scopes" }}
  tool_scopes = [{{ range $i, $t := $v }}{{ if $i }}, {{ end }}{ {{- range $j, $tk := keys $t | sortAlpha }}{{ if $j }},{{ end }} {{ $tk }} = {{ include "mcpgate.toml" (index $t $tk) }}{{ end }} }{{ end }}]
  {{- else }}
  {{ $k }} = {{ include "mcpgate.toml" $v }}
  {{- end }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end -}}
