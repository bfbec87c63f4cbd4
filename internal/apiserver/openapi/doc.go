// Package openapi holds the OpenAPI definitions of the types peapod serves,
// generated from k8s.io/api and k8s.io/apimachinery by kube-openapi's
// openapi-gen (the generator the kube-apiserver uses). Regenerate after
// changing the k8s.io/api version with `go generate` here.
package openapi

//go:generate sh -c "go run k8s.io/kube-openapi/cmd/openapi-gen@v0.0.0-20260721132016-d427ff9ee9ad --go-header-file /dev/null --output-dir . --output-pkg github.com/peapod-dev/peapod/internal/apiserver/openapi --output-file zz_generated.openapi.go --report-filename /dev/null k8s.io/api/core/v1 k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/version"
