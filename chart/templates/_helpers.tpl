{{- /*
    Helpers of the jupyterhub-ds chart. Every name starts with "jupyterhub-ds." so nothing clashes with
    the named templates of the Z2JH subchart (Helm shares one template namespace across a chart and its
    subcharts).
*/}}

{{- /* Chart name and version as used by the helm.sh/chart label. */}}
{{- define "jupyterhub-ds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /*
    Standard labels of every object of this chart. Pass a dict: {"root": $, "component": "hub"}.
*/}}
{{- define "jupyterhub-ds.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
helm.sh/chart: {{ include "jupyterhub-ds.chart" .root }}
{{- end }}

{{- /*
    Z2JH's prefix for its object names, with a trailing dash: "" by default, so Z2JH's objects are named
    hub, proxy-public, ...

    Z2JH offers named templates such as "jupyterhub.hub.fullname" to parent charts; we keep our own copy
    of the rule so our templates do not depend on Z2JH's template internals, and tests/chart checks that
    it gives the names Z2JH's real objects get (test_rbac_binds_the_hub_service_account). The rule:
      - jupyterhub.fullnameOverride is a string (Z2JH default ""): "<it>-", or "" when empty;
      - it is null: "<release>-<nameOverride or jupyterhub>-", or "<release>-" when the release name
        already contains that name.
    The parent sees the subchart's defaults merged into .Values.jupyterhub, so fullnameOverride is ""
    unless the user changes it.
*/}}
{{- define "jupyterhub-ds.z2jh.prefix" -}}
{{- $z2jh := .Values.jupyterhub | default dict }}
{{- $prefix := "" }}
{{- if and (hasKey $z2jh "fullnameOverride") (kindIs "string" $z2jh.fullnameOverride) }}
{{- $prefix = $z2jh.fullnameOverride }}
{{- else }}
{{- $name := (hasKey $z2jh "nameOverride" | ternary $z2jh.nameOverride "") | default "jupyterhub" }}
{{- $prefix = ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) }}
{{- end }}
{{- if $prefix }}{{ $prefix }}-{{ end }}
{{- end }}

{{- /* Name of Z2JH's hub Deployment and (default) ServiceAccount: "hub" by default. */}}
{{- define "jupyterhub-ds.hub.fullname" -}}
{{- include "jupyterhub-ds.z2jh.prefix" . }}hub
{{- end }}

{{- /* Name of Z2JH's public proxy Service: "proxy-public" by default. */}}
{{- define "jupyterhub-ds.proxy-public.fullname" -}}
{{- include "jupyterhub-ds.z2jh.prefix" . }}proxy-public
{{- end }}

{{- /*
    The ServiceAccount the hub runs as: jupyterhub.hub.serviceAccount.name when set, else the hub's
    fullname when Z2JH creates the account (jupyterhub.hub.serviceAccount.create, default true), else the
    namespace's "default" account.
*/}}
{{- define "jupyterhub-ds.hub.serviceAccountName" -}}
{{- $sa := dig "hub" "serviceAccount" dict (.Values.jupyterhub | default dict) }}
{{- if $sa.name }}
{{- $sa.name }}
{{- else if (hasKey $sa "create" | ternary $sa.create true) }}
{{- include "jupyterhub-ds.hub.fullname" . }}
{{- else -}}
default
{{- end }}
{{- end }}

{{- /* The custom.ds settings mapping (empty dict when unset). */}}
{{- define "jupyterhub-ds.settings" -}}
{{- dig "custom" "ds" dict (.Values.jupyterhub | default dict) | toJson }}
{{- end }}
