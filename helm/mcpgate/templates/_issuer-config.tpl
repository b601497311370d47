{{- define "mcpgate.issuerToml" -}}
{{- $v := .Values.issuer -}}
issuer = {{ include "mcpgate.issuerUrl" . | toJson }}
listen = "0.0.0.0:{{ $v.service.port }}"
admin_listen = "0.0.0.0:{{ $v.service.adminPort }}"
access_token_ttl_secs = {{ int $v.accessTokenTtlSecs }}
refresh_token_ttl_secs = {{ int $v.refreshTokenTtlSecs }}
{{- with $v.scopes }}
scopes = {{ include "mcpgate.toml" . }}
{{- end }}
{{- with $v.allowList }}
allow_list = {{ include "mcpgate.toml" . }}
{{- end }}
{{- with $v.trustedProxies }}
trusted_proxies = {{ include "mcpgate.toml" . }}
{{- end }}

[storage]
{{- if eq $v.storage.kind "embedded" }}
kind = "embedded"
path = "/data/issuer.redb"
{{- else if eq $v.storage.kind "redis" }}
kind = "redis"
# redis_urls: from MCPGW_ISSUER_STORAGE_REDIS_URLS (a Secret)
{{- else }}
{{- fail (printf "issuer.storage.kind must be embedded or redis, not %q" $v.storage.kind) }}
{{- end }}
{{- if include "mcpgate.redisConfigured" . }}

[revocation]
kind = "redis"
# redis_urls: from MCPGW_ISSUER_REVOCATION_REDIS_URLS (a Secret)
{{- end }}

[signing]
alg = {{ $v.signing.alg | toJson }}
{{- $keys := include "mcpgate.signingKeys" . }}
{{- if eq $keys "existing" }}
key_file = "/etc/mcpgate/keys/{{ $v.signing.keyFileKey }}"
{{- with $v.signing.nextKeyFileKey }}
next_key_file = "/etc/mcpgate/keys/{{ . }}"
{{- end }}
{{- else if eq $keys "inline" }}
key_file = "/etc/mcpgate/keys/signing-key.pem"
{{- if $v.signing.nextKey }}
next_key_file = "/etc/mcpgate/keys/next-signing-key.pem"
{{- end }}
{{- end }}
{{- range (include "mcpgate.protectedResources" . | fromJsonArray) }}

[[resources]]
resource = {{ required "issuer.protectedResources[].resource is required" .resource | toJson }}
{{- with .scopes }}
scopes = {{ include "mcpgate.toml" . }}
{{- end }}
{{- end }}
{{- range $v.providers }}

[[providers]]
{{- range $k, $val := omit . "users" "clientSecret" "existingSecret" "existingSecretKey" }}
{{ $k }} = {{ include "mcpgate.toml" $val }}
{{- end }}
{{- range .users }}
[[providers.users]]
{{- range $k, $val := . }}
{{ $k }} = {{ include "mcpgate.toml" $val }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.extraConfig }}

{{ . }}
{{- end }}
{{- end -}}
