{{/* Name of the InferenceService and prefix of every object. */}}
{{- define "audioguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object this chart creates. */}}
{{- define "audioguard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "audioguard.hasTransformer" -}}
{{- if ne .Values.topology "predictor-only" }}true{{ end -}}
{{- end -}}

{{- define "audioguard.hasPredictor" -}}
{{- if ne .Values.topology "transformer-only" }}true{{ end -}}
{{- end -}}

{{/*
Pod labels selecting one component ("transformer" or "predictor"): the labels KServe itself puts
on InferenceService pods, or the edge Deployment's labels in the transformer-only topology.
Call as (include "audioguard.selector" (list $ "transformer")).
*/}}
{{- define "audioguard.selector" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- if and (eq $component "transformer") (eq $root.Values.topology "transformer-only") -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: transformer
{{- else -}}
serving.kserve.io/inferenceservice: {{ include "audioguard.fullname" $root }}
component: {{ $component }}
{{- end -}}
{{- end -}}

{{- define "audioguard.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Pod-level security context (both components, the edge Deployment and the weights Job). */}}
{{- define "audioguard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: read-only root, no privilege escalation, no capabilities. */}}
{{- define "audioguard.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The transformer's command-line flags: exactly Dockerfile.transformer's CMD (a manifest's args
replace CMD, and KServe appends --predictor_host only when it is absent).
*/}}
{{- define "audioguard.transformerArgs" -}}
- --model_name
- {{ .Values.modelName }}
- --model_dir
- /mnt/models
- --http_port
- "8080"
- --grpc_port
- "8081"
- --workers
- "1"
- --predictor_protocol
- grpc-v2
- --enable_predictor_health_check
{{- end -}}

{{/* The predictor's flags: exactly Dockerfile.predictor's CMD. */}}
{{- define "audioguard.predictorArgs" -}}
- --model_name
- {{ .Values.modelName }}
- --model_dir
- /mnt/models
- --http_port
- "8080"
- --grpc_port
- "8081"
{{- end -}}

{{/*
Graceful stop. Kubernetes takes a terminating pod out of its Service's endpoints while it sends the
SIGTERM, and kube-proxy learns it a moment later: a server that closes its port at once refuses the
connections still sent its way (seen in a rolling update on a real cluster: docs/deploy.md). The
preStop sleep keeps the pod serving through that moment; then SIGTERM lets the requests in flight
finish (terminationGracePeriodSeconds covers the longest: the component's timeout).
*/}}
{{- define "audioguard.preStop" -}}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "5"]
{{- end -}}

{{- define "audioguard.transformerProbes" -}}
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: 8080
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: 8080
  initialDelaySeconds: 30
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{/*
Predictor probes. Knative allows one port per container and probes only on it: the predictor
serves gRPC (h2c) there, so the probes are TCP on 8081. In Standard mode the HTTP health routes
on 8080 are reachable and used.
*/}}
{{- define "audioguard.predictorProbes" -}}
{{- if eq (include "audioguard.deploymentMode" .) "Knative" -}}
readinessProbe:
  tcpSocket:
    port: 8081
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
livenessProbe:
  tcpSocket:
    port: 8081
  initialDelaySeconds: 30
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- else -}}
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: 8080
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: 8080
  initialDelaySeconds: 30
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end }}
{{- end -}}

{{/* Environment shared by the transformer in every topology (settings come from the ConfigMap). */}}
{{- define "audioguard.transformerEnvFrom" -}}
- configMapRef:
    name: {{ include "audioguard.fullname" . }}-transformer
{{- if or .Values.dht.url .Values.dht.existingSecret }}
- secretRef:
    name: {{ .Values.dht.existingSecret | default (printf "%s-dht" (include "audioguard.fullname" .)) }}
{{- end }}
{{- if or .Values.mqtt.url .Values.mqtt.existingSecret }}
- secretRef:
    name: {{ .Values.mqtt.existingSecret | default (printf "%s-mqtt" (include "audioguard.fullname" .)) }}
{{- end }}
{{- with .Values.ui.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{- define "audioguard.transformerVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: outbox
  mountPath: /var/lib/audioguard
{{- if .Values.settings.anomalyGroups }}
- name: anomaly-groups
  mountPath: /etc/audioguard
  readOnly: true
{{- end }}
{{- if .Values.mqtt.caSecret }}
- name: mqtt-ca
  mountPath: /etc/audioguard-mqtt-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* /tmp lives in memory: nothing the transformer handles (audio included) touches a disk. */}}
{{- define "audioguard.transformerVolumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 128Mi
- name: outbox
{{- if .Values.outbox.persistence }}
  persistentVolumeClaim:
    claimName: {{ include "audioguard.fullname" . }}-outbox
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.outbox.size }}
{{- end }}
{{- if .Values.settings.anomalyGroups }}
- name: anomaly-groups
  configMap:
    name: {{ include "audioguard.fullname" . }}-anomaly-groups
{{- end }}
{{- if .Values.mqtt.caSecret }}
- name: mqtt-ca
  secret:
    secretName: {{ .Values.mqtt.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{/* Checks that JSON schema cannot express (they relate two values). */}}
{{- define "audioguard.validate" -}}
{{- range $component := list "transformer" "predictor" }}
{{- $spec := index $.Values $component }}
{{- if lt (int $spec.maxReplicas) (int $spec.minReplicas) }}
{{- fail (printf "%s.maxReplicas (%d) must be at least %s.minReplicas (%d)" $component (int $spec.maxReplicas) $component (int $spec.minReplicas)) }}
{{- end }}
{{- end }}
{{- with .Values.edge.listen.sources }}
{{- if ne $.Values.topology "transformer-only" }}
{{- fail "edge.listen.sources: live sources are listened to by the edge transformer: set topology=transformer-only" }}
{{- end }}
{{- $variables := include "audioguard.sourceVariables" $ | fromJsonArray }}
{{- if and $variables (not $.Values.edge.listen.credentialsSecret) }}
{{- fail (printf "edge.listen.sources name %s: set edge.listen.credentialsSecret to the Secret holding them" (join ", " $variables)) }}
{{- end }}
{{- range $variables }}
{{- if hasPrefix "AUDIOGUARD_" . }}
{{- fail (printf "edge.listen.sources: %s is a setting of the service, not a credential" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.models.download.enabled (ne (printf "pvc://%s/" .Values.models.download.claimName) .Values.models.storageUri) }}
{{- fail (printf "models.download fills the claim %s: set models.storageUri to pvc://%s/" .Values.models.download.claimName .Values.models.download.claimName) }}
{{- end }}
{{- end -}}

{{/* The ${VAR} names the live sources' urls use, sorted and unique (a JSON list). */}}
{{- define "audioguard.sourceVariables" -}}
{{- $names := list -}}
{{- range .Values.edge.listen.sources -}}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" .url -1 -}}
{{- $names = append $names (trimSuffix "}" (trimPrefix "${" .)) -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/*
A digest of the files a component reads its settings from (its ConfigMaps, the DHT Secret), for a
pod annotation: a `helm upgrade` that changes a setting then rolls the pods (an edited ConfigMap alone
reaches no running pod: the settings are environment variables read at start). Takes (list $ file...).
*/}}
{{- define "audioguard.configChecksum" -}}
{{- $root := index . 0 -}}
{{- $rendered := list -}}
{{- range slice . 1 -}}
{{- $rendered = append $rendered (include (print $root.Template.BasePath "/" .) $root) -}}
{{- end -}}
{{- join "\n---\n" $rendered | sha256sum | trunc 16 -}}
{{- end }}

{{/*
The KServe deployment mode: deploymentMode, or for Auto what the cluster can run. Knative mode needs
Knative Serving, and KServe gives an InferenceService it cannot run no condition a user sees (READY
stays Unknown; only its controller's log says "Knative Serving is not available": seen on a real
cluster). Auto is Knative where the cluster serves serving.knative.dev/v1, else Standard (`helm
template` without --api-versions serving.knative.dev/v1 renders Standard).
*/}}
{{- define "audioguard.deploymentMode" -}}
{{- if ne .Values.deploymentMode "Auto" -}}
{{- .Values.deploymentMode -}}
{{- else if .Capabilities.APIVersions.Has "serving.knative.dev/v1" -}}
Knative
{{- else -}}
Standard
{{- end -}}
{{- end }}
