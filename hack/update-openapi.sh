#!/usr/bin/env bash
# Regenerates internal/openapi/zz_generated.openapi.go: the OpenAPI schemas of
# the API types peapod serves, made by k8s.io/kube-openapi's openapi-gen from
# the k8s.io/api and k8s.io/apimachinery packages in go.mod, as kubernetes'
# hack/update-codegen.sh (gen_openapi) does for kube-apiserver.
#
# The generator runs at the kube-openapi version go.mod requires, so the
# generated code matches the kube-openapi packages it is compiled against.
# --output-model-name-file makes it use the types' OpenAPIModelName()
# (io.k8s.api.core.v1.Pod, ...); --readonly-pkg keeps it from writing
# model-name files into the read-only module cache (kubernetes issue 136295).
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

pkgs=(
	k8s.io/api/coordination/v1
	k8s.io/api/core/v1
	k8s.io/api/events/v1
	k8s.io/api/policy/v1
	k8s.io/apimachinery/pkg/apis/meta/v1
	k8s.io/apimachinery/pkg/runtime
	k8s.io/apimachinery/pkg/util/intstr
	k8s.io/apimachinery/pkg/api/resource
	k8s.io/apimachinery/pkg/version
)
readonly_flags=()
for p in "${pkgs[@]}"; do
	readonly_flags+=(--readonly-pkg "$p")
done

version=$(go list -m -f '{{.Version}}' k8s.io/kube-openapi)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/boilerplate.go.txt"

# API rule violations (names_match, list_type_missing, ...) belong to
# k8s.io/api; kubernetes keeps its own exceptions list, so the report is
# discarded here rather than failing the run.
go run "k8s.io/kube-openapi/cmd/openapi-gen@$version" \
	--go-header-file "$tmp/boilerplate.go.txt" \
	--output-dir internal/openapi \
	--output-pkg github.com/peapod-dev/peapod/internal/openapi \
	--output-file zz_generated.openapi.go \
	--output-model-name-file zz_generated.model_name.go \
	--report-filename "$tmp/violations.report" \
	"${readonly_flags[@]}" \
	"${pkgs[@]}"
