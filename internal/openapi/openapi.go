// Package openapi builds and serves the OpenAPI v2 (/openapi/v2) and v3
// (/openapi/v3, /openapi/v3/api/v1, /openapi/v3/apis/events.k8s.io/v1)
// documents of the API peapod serves, as kube-apiserver does: schemas from
// openapi-gen over the k8s.io/api types (zz_generated.openapi.go, made by
// hack/update-openapi.sh), paths and operations from kube-openapi's builders
// over routes that mirror kube-apiserver's endpoint installer. kubectl reads
// them to validate manifests (fieldValidation=Strict on the server, or
// client-side against v2) and for `kubectl explain`.
package openapi

//go:generate ../../hack/update-openapi.sh

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"unicode"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/schemamutation"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/peapod-dev/peapod/internal/version"
)

const extensionGVK = "x-kubernetes-group-version-kind"

// Handler serves the OpenAPI documents under /openapi/ (mount it at
// /openapi/ in the API server's mux): /openapi/v2 as JSON or, when asked
// with Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf,
// as protobuf; /openapi/v3, the discovery document listing each group
// version's serverRelativeURL with its hash; and /openapi/v3/<group
// version> with ETag, and Cache-Control: public, immutable when the request
// carries the current hash (a stale hash is redirected to the current one).
//
// Documents are built on first use and then kept in memory.
func Handler() (http.Handler, error) {
	d, err := newDocuments()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/openapi/v2", newV2Handler(d.v2))
	v3 := handler3.NewOpenAPIService()
	mux.HandleFunc("/openapi/v3", v3.HandleDiscovery)
	for _, g := range d.groups {
		gv := strings.TrimPrefix(g.prefix, "/")
		v3.UpdateGroupVersionLazy(gv, d.v3[g.prefix])
		// Each group version on its own path, so that any other is a 404
		// (kube-openapi's prefix handler answers an unknown one with an
		// empty 200).
		mux.HandleFunc("/openapi/v3/"+gv, v3.HandleGroupVersion)
	}
	return mux, nil
}

// documents holds the lazily built specs.
type documents struct {
	groups []group
	v2     cached.Value[*spec.Swagger]
	v3     map[string]cached.Value[*spec3.OpenAPI] // by group prefix
}

func newDocuments() (*documents, error) {
	d := &documents{groups: groups(), v3: map[string]cached.Value[*spec3.OpenAPI]{}}
	// Check the route tables now, so a mistake fails Handler, not a request.
	for _, g := range d.groups {
		if _, err := buildRoutes(g); err != nil {
			return nil, err
		}
	}
	namer, err := newDefinitionNamer()
	if err != nil {
		return nil, err
	}
	// The builders add extensions to the schemas they copy from the shared
	// generated definitions; one build at a time keeps that race-free.
	var mu sync.Mutex
	d.v2 = cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		mu.Lock()
		defer mu.Unlock()
		s, err := buildV2(d.groups, namer)
		return s, "v2", err
	}))
	// One set of v3 definitions serves every group version, as in
	// kube-apiserver's DefaultOpenAPIV3Config.
	v3Defs := sync.OnceValue(func() map[string]common.OpenAPIDefinition {
		return GetOpenAPIDefinitions(func(name string) spec.Ref {
			defName, _ := namer.name(name)
			return spec.MustCreateRef("#/components/schemas/" + common.EscapeJsonPointer(defName))
		})
	})
	for _, g := range d.groups {
		d.v3[g.prefix] = cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			mu.Lock()
			defer mu.Unlock()
			s, err := buildV3(g, namer, v3Defs())
			return s, g.prefix, err
		}))
	}
	return d, nil
}

func info() *spec.Info {
	// kube-apiserver reports its version without the pre-release part.
	v, _, _ := strings.Cut(version.Version, "-")
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: v}}
}

// buildV2 is kube-apiserver's /openapi/v2: all group versions in one
// document, defaults pruned from the definitions.
func buildV2(groups []group, namer *definitionNamer) (*spec.Swagger, error) {
	var containers []common.RouteContainer
	for _, g := range groups {
		c, err := buildRoutes(g)
		if err != nil {
			return nil, err
		}
		containers = append(containers, c)
	}
	config := &common.Config{
		ProtocolList: []string{"https"},
		Info:         info(),
		DefaultResponse: &spec.Response{ResponseProps: spec.ResponseProps{
			Description: "Default Response.",
		}},
		CommonResponses: map[int]spec.Response{
			http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}},
		},
		SecurityDefinitions: &spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{
			SecuritySchemeProps: spec.SecuritySchemeProps{
				Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
			},
		}},
		DefaultSecurity:                []map[string][]string{{"BearerToken": {}}},
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              namer.name,
		GetDefinitions:                 GetOpenAPIDefinitions,
	}
	s, err := builder.BuildOpenAPISpecFromRoutes(containers, config)
	if err != nil {
		return nil, fmt.Errorf("build OpenAPI v2: %w", err)
	}
	s.Definitions = pruneDefaults(s.Definitions)
	return s, nil
}

// buildV3 is kube-apiserver's /openapi/v3/<group version>.
func buildV3(g group, namer *definitionNamer, defs map[string]common.OpenAPIDefinition) (*spec3.OpenAPI, error) {
	c, err := buildRoutes(g)
	if err != nil {
		return nil, err
	}
	config := &common.OpenAPIV3Config{
		Info: info(),
		DefaultResponse: &spec3.Response{ResponseProps: spec3.ResponseProps{
			Description: "Default Response.",
		}},
		CommonResponses: map[int]*spec3.Response{
			http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
		},
		SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{
			SecuritySchemeProps: spec3.SecuritySchemeProps{
				Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
			},
		}},
		DefaultSecurity:                []map[string][]string{{"BearerToken": {}}},
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              namer.name,
		GetDefinitions:                 GetOpenAPIDefinitions,
		Definitions:                    defs,
	}
	s, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{c}, config)
	if err != nil {
		return nil, fmt.Errorf("build OpenAPI v3 for %s: %w", g.gv, err)
	}
	filterScopedGVKs(s, g)
	return s, nil
}

// pruneDefaults removes every "default" from the v2 definitions, as
// kube-apiserver does (kube-openapi handler.PruneDefaults) without changing
// the shared generated schemas.
func pruneDefaults(defs spec.Definitions) spec.Definitions {
	w := &schemamutation.Walker{
		SchemaCallback: func(s *spec.Schema) *spec.Schema {
			if s.Default == nil {
				return s
			}
			c := *s
			c.Default = nil
			return &c
		},
		RefCallback: schemamutation.RefCallbackNoop,
	}
	out := make(spec.Definitions, len(defs))
	for k, v := range defs {
		out[k] = *w.WalkSchema(&v)
	}
	return out
}

// filterScopedGVKs keeps, on the meta types registered into every group
// (WatchEvent, DeleteOptions), only the group-version-kinds of this document's
// group version and core/v1 (k8s.io/apiserver pkg/server/routes/openapi.go).
func filterScopedGVKs(s *spec3.OpenAPI, g group) {
	for _, schema := range s.Components.Schemas {
		gvks, ok := schema.Extensions[extensionGVK].([]any)
		if !ok || len(gvks) <= 1 {
			continue
		}
		if first, _ := gvks[0].(map[string]any); first["kind"] != "WatchEvent" && first["kind"] != "DeleteOptions" {
			continue
		}
		var kept []any
		for _, item := range gvks {
			m := item.(map[string]any)
			if (m["group"] == g.gv.Group && m["version"] == g.gv.Version) || (m["group"] == "" && m["version"] == "v1") {
				kept = append(kept, item)
			}
		}
		// The extensions map may be shared with other documents: replace it.
		ext := make(spec.Extensions, len(schema.Extensions))
		for k, v := range schema.Extensions {
			ext[k] = v
		}
		ext[extensionGVK] = kept
		schema.Extensions = ext
	}
}

// verbPrefixes are the verbs operation names start with; the trie finds the
// shortest ("delete" of "deletecollection"), as in kube-apiserver, whence
// deleteCoreV1CollectionNamespacedPod.
var verbPrefixes = util.NewTrie([]string{"get", "log", "read", "replace", "patch", "delete", "deletecollection", "watch", "connect", "proxy", "list", "create"})

// operationIDAndTags turns createNamespacedPod at /api/v1/... into
// createCoreV1NamespacedPod with tag core_v1 (k8s.io/apiserver
// pkg/endpoints/openapi.GetOperationIDAndTags).
func operationIDAndTags(r common.Route) (string, []string, error) {
	op := r.OperationName()
	prefix, ok := verbPrefixes.GetPrefix(op)
	if !ok {
		return "", nil, fmt.Errorf("operation %q does not start with a verb", op)
	}
	op = op[len(prefix):]
	parts := strings.Split(strings.Trim(r.Path(), "/"), "/")
	if len(parts) >= 1 && parts[0] == "api" {
		parts = append([]string{"apis", "core"}, parts[1:]...)
	}
	var tags []string
	if len(parts) >= 2 && parts[0] == "apis" {
		group := strings.TrimSuffix(parts[1], ".k8s.io")
		prefix += validOperationID(group, true)
		tag := validOperationID(group, false)
		if len(parts) > 2 {
			prefix += validOperationID(parts[2], true)
			tag += "_" + validOperationID(parts[2], false)
		}
		tags = append(tags, tag)
	}
	return prefix + validOperationID(op, true), tags, nil
}

// validOperationID drops punctuation and camel-cases what follows it
// ("events.k8s" -> "eventsK8s").
func validOperationID(s string, capitalizeFirst bool) string {
	var b strings.Builder
	capitalize := capitalizeFirst
	for i, r := range s {
		if unicode.IsLetter(r) || r == '_' || (i != 0 && unicode.IsDigit(r)) {
			if capitalize {
				r = unicode.ToUpper(r)
				capitalize = false
			}
			b.WriteRune(r)
		} else {
			capitalize = true
		}
	}
	return b.String()
}

// definitionNamer names definitions by their model name and marks the
// kinds a scheme knows with x-kubernetes-group-version-kind, which kubectl
// uses to find a kind's schema (k8s.io/apiserver pkg/endpoints/openapi
// DefinitionNamer over kube-apiserver's scheme, here the served groups').
type definitionNamer struct {
	gvks map[string][]any
}

func newDefinitionNamer() (*definitionNamer, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{coordinationv1.AddToScheme, corev1.AddToScheme, eventsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("register the served types: %w", err)
		}
	}
	byName := map[string][]metav1.GroupVersionKind{}
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name, err := scheme.ToOpenAPIDefinitionName(gvk)
		if err != nil {
			continue
		}
		byName[name] = append(byName[name], metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind})
	}
	n := &definitionNamer{gvks: map[string][]any{}}
	for name, list := range byName {
		sort.Slice(list, func(i, j int) bool {
			a, b := list[i], list[j]
			if a.Group != b.Group {
				return a.Group < b.Group
			}
			if a.Version != b.Version {
				return a.Version < b.Version
			}
			return a.Kind < b.Kind
		})
		for _, gvk := range list {
			n.gvks[name] = append(n.gvks[name], map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
		}
	}
	return n, nil
}

func (n *definitionNamer) name(name string) (string, spec.Extensions) {
	if gvks, ok := n.gvks[name]; ok {
		return name, spec.Extensions{extensionGVK: gvks}
	}
	return name, nil
}
