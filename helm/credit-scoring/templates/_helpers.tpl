{{/* Chart name, fullname and labels */}}
{{- define "credit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one component's objects: the component name (services find each other by it). */}}
{{- define "credit.component" -}}
{{- .component -}}
{{- end -}}

{{- define "credit.labels" -}}
app.kubernetes.io/name: {{ include "credit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: credit-scoring
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ include "credit.chart" .root }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "credit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image: registry/prefix-component:tag[@digest] */}}
{{- define "credit.image" -}}
{{- $img := .root.Values.image -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- $digest := index (default dict $img.digests) .component | default "" -}}
{{- if $digest -}}
{{- printf "%s/%s:%s@%s" $img.registry .component $tag $digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.registry .component $tag -}}
{{- end -}}
{{- end -}}

{{- define "credit.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "credit.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Settings every Python container shares (ConfigMap + Secret refs). */}}
{{- define "credit.envFrom" -}}
- configMapRef:
    name: credit-config
{{- end -}}

{{- define "credit.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://redis:6379/0
{{- else -}}
{{- required "redis.externalUrl is required when redis.enabled=false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* The gateway's gRPC target of a backend: its headless Service, one DNS address per ready
pod, which the gateway's round robin spreads calls over (a ClusterIP Service is one address:
one HTTP/2 connection, so every call of a gateway pod went to one backend pod). */}}
{{- define "credit.grpcTarget" -}}
{{- printf "dns:///%s-headless.%s.svc.%s:%v" .name .root.Release.Namespace .root.Values.clusterDomain .port -}}
{{- end -}}

{{/* Redis of the gateway's shared rate limit ("" : none, each replica limits alone). */}}
{{- define "credit.rateLimitRedisUrl" -}}
{{- $limit := .Values.gateway.rateLimit -}}
{{- if $limit.shared -}}
{{- if $limit.redisUrl -}}
{{- $limit.redisUrl -}}
{{- else if .Values.redis.enabled -}}
redis://redis:6379/1
{{- else if ne .Values.config.onlineStore "redis-cluster" -}}
{{- required "redis.externalUrl is required when redis.enabled=false" .Values.redis.externalUrl -}}
{{- else -}}
{{- fail "gateway.rateLimit.shared with a Redis Cluster online store (redis.enabled=false) needs gateway.rateLimit.redisUrl, a plain Redis (the limiter talks to one node); or gateway.rateLimit.shared=false (each gateway replica then enforces the limit alone)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether the shared rate limit lives in the chart's Redis (NetworkPolicy: gateway -> redis). */}}
{{- define "credit.rateLimitInChart" -}}
{{- if and .Values.gateway.rateLimit.shared (not .Values.gateway.rateLimit.redisUrl) .Values.redis.enabled -}}
true
{{- end -}}
{{- end -}}

{{- define "credit.trackingUri" -}}
{{- if .Values.mlflow.enabled -}}
http://mlflow:5000
{{- else -}}
{{- .Values.mlflow.trackingUri -}}
{{- end -}}
{{- end -}}

{{- define "credit.secretName" -}}
{{- default "credit-secrets" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* NetworkPolicy fragments */}}
{{- define "credit.podSel" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "credit.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}
{{- define "credit.externalEgress" -}}
- to:
    {{- range .Values.networkPolicy.externalEgressCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range .Values.networkPolicy.externalEgressPorts }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}
