{{/* Pod-level knobs shared by the issuer and the verifier. Each takes
(dict "root" $ "component" "issuer"|"verifier"). */}}

{{- define "mcpgate.componentName" -}}
{{- if eq .component "issuer" -}}{{ include "mcpgate.issuerName" .root }}{{- else -}}{{ include "mcpgate.verifierName" .root }}{{- end -}}
{{- end -}}

{{- define "mcpgate.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount -}}
{{- if $sa.create -}}{{ default (include "mcpgate.componentName" .) $sa.name }}{{- else -}}{{ default "default" $sa.name }}{{- end -}}
{{- end -}}

{{/* Replicas of a Deployment (omitted under an HPA) and whether it has more than one. */}}
{{- define "mcpgate.minReplicas" -}}
{{- $c := index .root.Values .component -}}
{{- if $c.autoscaling.enabled }}{{ $c.autoscaling.minReplicas }}{{ else }}{{ $c.replicas }}{{ end -}}
{{- end -}}

{{/* The pod template's labels: the selector's, then podLabels (which cannot override them). */}}
{{- define "mcpgate.podLabels" -}}
{{- $c := index .root.Values .component -}}
{{- $sel := fromYaml (include "mcpgate.selector" .) -}}
{{- toYaml (merge $sel (deepCopy (default (dict) $c.podLabels))) -}}
{{- end -}}

{{/* Pod spec fields after securityContext. */}}
{{- define "mcpgate.podSpec" -}}
{{- $c := index .root.Values .component -}}
{{- if and (gt (int $c.preStopSleepSeconds) 0) (le (int $c.terminationGracePeriodSeconds) (int $c.preStopSleepSeconds)) }}
{{- fail (printf "%s.terminationGracePeriodSeconds must exceed %s.preStopSleepSeconds: the grace period includes the preStop sleep" .component .component) }}
{{- end -}}
serviceAccountName: {{ include "mcpgate.serviceAccountName" . }}
automountServiceAccountToken: {{ $c.serviceAccount.automountToken }}
terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- if $c.topologySpreadConstraints }}
{{- $sel := fromYaml (include "mcpgate.selector" .) }}
{{- $all := list }}
{{- range $c.topologySpreadConstraints }}
{{- $t := deepCopy . }}
{{- if not (hasKey $t "labelSelector") }}{{ $_ := set $t "labelSelector" (dict "matchLabels" $sel) }}{{ end }}
{{- $all = append $all $t }}
{{- end }}
topologySpreadConstraints:
  {{- toYaml $all | nindent 2 }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.initContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container fields after env/ports: envFrom, probes, lifecycle. */}}
{{- define "mcpgate.containerExtras" -}}
{{- $c := index .root.Values .component -}}
{{- with $c.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $probes := default (dict) $c.probes }}
{{- range $k := list "startup" "liveness" "readiness" }}
{{- with index $probes $k }}
{{- $p := deepCopy . }}
{{- if and (hasKey $p "grpc") (not (index (default (dict) $p.grpc) "port")) }}
{{- $_ := set $p "grpc" (merge (dict "port" (int $.root.Values.verifier.service.grpcPort)) (default (dict) $p.grpc)) }}
{{- end }}
{{ $k }}Probe:
  {{- toYaml $p | nindent 2 }}
{{- end }}
{{- end }}
{{- if $c.lifecycle }}
lifecycle:
  {{- toYaml $c.lifecycle | nindent 2 }}
{{- else if and (gt (int $c.preStopSleepSeconds) 0) (semverCompare ">=1.30-0" .root.Capabilities.KubeVersion.Version) }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int $c.preStopSleepSeconds }}
{{- end }}
{{- end -}}

{{/* The objects every component gets next to its Deployment: ServiceAccount, HPA, PDB. */}}
{{- define "mcpgate.companions" -}}
{{- $c := index .root.Values .component -}}
{{- $name := include "mcpgate.componentName" . -}}
{{- /* One ServiceAccount when both components are given the same name. */}}
{{- $shared := and (eq .component "verifier") .root.Values.issuer.enabled .root.Values.issuer.serviceAccount.create
      (eq (include "mcpgate.serviceAccountName" .) (include "mcpgate.serviceAccountName" (dict "root" .root "component" "issuer"))) }}
{{- if and $c.serviceAccount.create (not $shared) }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "mcpgate.serviceAccountName" . }}
  labels:
    {{- include "mcpgate.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- with $c.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $c.serviceAccount.automountToken }}
{{- end }}
{{- if $c.autoscaling.enabled }}
{{- $a := $c.autoscaling }}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) }}
{{- fail (printf "%s.autoscaling.maxReplicas must be at least minReplicas" .component) }}
{{- end }}
{{- if not (or $a.targetCPUUtilizationPercentage $a.targetMemoryUtilizationPercentage) }}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" .component) }}
{{- end }}
{{- if and $a.targetCPUUtilizationPercentage (not (($c.resources).requests).cpu) }}
{{- fail (printf "%s.autoscaling.targetCPUUtilizationPercentage needs %s.resources.requests.cpu (utilization is a share of the request)" .component .component) }}
{{- end }}
{{- if and $a.targetMemoryUtilizationPercentage (not (($c.resources).requests).memory) }}
{{- fail (printf "%s.autoscaling.targetMemoryUtilizationPercentage needs %s.resources.requests.memory" .component .component) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcpgate.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- range $res, $target := dict "cpu" $a.targetCPUUtilizationPercentage "memory" $a.targetMemoryUtilizationPercentage }}
    {{- if $target }}
    - type: Resource
      resource:
        name: {{ $res }}
        target:
          type: Utilization
          averageUtilization: {{ int $target }}
    {{- end }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if and $c.podDisruptionBudget.enabled (gt (int (include "mcpgate.minReplicas" .)) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcpgate.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if $c.podDisruptionBudget.maxUnavailable }}
  maxUnavailable: {{ $c.podDisruptionBudget.maxUnavailable }}
  {{- else }}
  minAvailable: {{ $c.podDisruptionBudget.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "mcpgate.selector" . | nindent 6 }}
{{- end }}
{{- end -}}
