package apiserver

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	openapi_v3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/openapiconv"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/peapod-dev/peapod/internal/apiserver/openapi"
	"github.com/peapod-dev/peapod/internal/registry"
)

// Media types clients ask the OpenAPI documents in, and (as kube-openapi's
// handlers answer) the parseable types the answers carry.
const (
	openAPIV2Protobuf         = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
	openAPIV3Protobuf         = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
	openAPIV2ProtobufResponse = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	openAPIV3ProtobufResponse = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
)

// openAPIDocs are the served documents, built once on first request: v2 for
// /openapi/v2 and its v3 conversion for /openapi/v3/api/v1.
type openAPIDocs struct {
	once            sync.Once
	err             error
	v2JSON, v2Proto []byte
	v3JSON, v3Proto []byte
	v3Hash          string
}

func (s *Server) openAPI() (*openAPIDocs, error) {
	d := &s.openapi
	d.once.Do(func() { d.err = d.build(s.reg.Resources()) })
	return d, d.err
}

func (d *openAPIDocs) build(resources []*registry.Resource) error {
	swagger := buildSwagger(resources)
	var err error
	if d.v2JSON, err = json.Marshal(swagger); err != nil {
		return fmt.Errorf("encode OpenAPI v2: %w", err)
	}
	doc, err := openapi_v2.ParseDocument(d.v2JSON)
	if err != nil {
		return fmt.Errorf("parse OpenAPI v2: %w", err)
	}
	if d.v2Proto, err = proto.Marshal(doc); err != nil {
		return fmt.Errorf("encode OpenAPI v2 protobuf: %w", err)
	}
	v3 := openapiconv.ConvertV2ToV3(swagger)
	// Schemas come from the definitions themselves: v3 can say what v2
	// cannot (oneOf for quantities and int-or-string).
	v3.Components.Schemas = v3Schemas()
	if d.v3JSON, err = json.Marshal(v3); err != nil {
		return fmt.Errorf("encode OpenAPI v3: %w", err)
	}
	doc3, err := openapi_v3.ParseDocument(d.v3JSON)
	if err != nil {
		return fmt.Errorf("parse OpenAPI v3: %w", err)
	}
	if d.v3Proto, err = proto.Marshal(doc3); err != nil {
		return fmt.Errorf("encode OpenAPI v3 protobuf: %w", err)
	}
	sum := sha512.Sum512(d.v3JSON)
	d.v3Hash = fmt.Sprintf("%X", sum[:])
	return nil
}

func (s *Server) serveOpenAPIV2(w http.ResponseWriter, r *http.Request) {
	d, err := s.openAPI()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if acceptsMedia(r, openAPIV2Protobuf, openAPIV2ProtobufResponse, runtime.ContentTypeProtobuf) {
		w.Header().Set("Content-Type", openAPIV2ProtobufResponse)
		w.Write(d.v2Proto)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(d.v2JSON)
}

func (s *Server) serveOpenAPIV3(w http.ResponseWriter, r *http.Request, path string) {
	d, err := s.openAPI()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch path {
	case "openapi/v3":
		writeJSON(w, http.StatusOK, "application/json", handler3.OpenAPIV3Discovery{
			Paths: map[string]handler3.OpenAPIV3DiscoveryGroupVersion{
				"api/v1": {ServerRelativeURL: "/openapi/v3/api/v1?hash=" + d.v3Hash},
			},
		})
	case "openapi/v3/api/v1":
		if r.URL.Query().Get("hash") == d.v3Hash {
			w.Header().Set("Cache-Control", "public, immutable")
		}
		if acceptsMedia(r, openAPIV3Protobuf, openAPIV3ProtobufResponse, runtime.ContentTypeProtobuf) {
			w.Header().Set("Content-Type", openAPIV3ProtobufResponse)
			w.Write(d.v3Proto)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(d.v3JSON)
	default:
		s.writeError(w, r, notFoundPath())
	}
}

// acceptsMedia: the Accept header's first choice is one of mediaTypes
// (compared as text: the OpenAPI protobuf types contain "@", which mime
// rejects).
func acceptsMedia(r *http.Request, mediaTypes ...string) bool {
	first, _, _ := strings.Cut(r.Header.Get("Accept"), ",")
	first, _, _ = strings.Cut(first, ";")
	return contains(mediaTypes, strings.TrimSpace(first))
}

// buildSwagger assembles the v2 document: the generated definitions, the
// group-version-kind of each served kind, and the paths with their
// operations and parameters (kubectl reads the PATCH operations' parameters
// to learn that the server validates fields itself).
func buildSwagger(resources []*registry.Resource) *spec.Swagger {
	defs := openapi.GetOpenAPIDefinitions(func(name string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + name)
	})
	sw := &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: KubernetesVersion}},
		Paths:       &spec.Paths{Paths: map[string]spec.PathItem{}},
		Definitions: spec.Definitions{},
	}}
	for name, def := range defs {
		schema := def.Schema
		if v2, ok := schema.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
			schema = v2
		}
		sw.Definitions[name] = schema
	}
	addGVKExtensions(sw.Definitions)
	for _, res := range resources {
		addPaths(sw.Paths.Paths, res)
	}
	return sw
}

func v3Schemas() map[string]*spec.Schema {
	defs := openapi.GetOpenAPIDefinitions(func(name string) spec.Ref {
		return spec.MustCreateRef("#/components/schemas/" + name)
	})
	plain := spec.Definitions{}
	for name, def := range defs {
		schema := def.Schema
		if _, ok := schema.Extensions[common.ExtensionV2Schema]; ok {
			ext := spec.Extensions{}
			for k, v := range schema.Extensions {
				if k != common.ExtensionV2Schema {
					ext[k] = v
				}
			}
			schema.Extensions = ext
		}
		plain[name] = schema
	}
	addGVKExtensions(plain)
	out := make(map[string]*spec.Schema, len(plain))
	for name := range plain {
		schema := plain[name]
		out[name] = &schema
	}
	return out
}

type modelNamer interface{ OpenAPIModelName() string }

// addGVKExtensions marks each kind's schema with x-kubernetes-group-version-kind.
func addGVKExtensions(defs spec.Definitions) {
	gvks := map[string][]any{}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		namer, ok := reflect.New(t).Interface().(modelNamer)
		if !ok {
			continue
		}
		name := namer.OpenAPIModelName()
		gvks[name] = append(gvks[name], map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
	}
	for name, list := range gvks {
		def, ok := defs[name]
		if !ok {
			continue
		}
		sort.Slice(list, func(i, j int) bool {
			a, b := list[i].(map[string]any), list[j].(map[string]any)
			return a["group"].(string)+a["version"].(string) < b["group"].(string)+b["version"].(string)
		})
		def.AddExtension("x-kubernetes-group-version-kind", list)
		defs[name] = def
	}
}

func queryParam(name, typ, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "query", Description: desc},
		SimpleSchema:      spec.SimpleSchema{Type: typ},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

func pathParam(name, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "path", Required: true, Description: desc},
		SimpleSchema:      spec.SimpleSchema{Type: "string"},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

var (
	pretty               = queryParam("pretty", "string", "If 'true', then the output is pretty printed.")
	dryRun               = queryParam("dryRun", "string", "When present, indicates that modifications should not be persisted. The only valid value is: All")
	fieldManager         = queryParam("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes.")
	fieldValidationParam = queryParam("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.")
	listParams           = []spec.Parameter{
		queryParam("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
		queryParam("continue", "string", "The continue option should be set when retrieving more results from the server."),
		queryParam("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
		queryParam("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
		queryParam("limit", "integer", "limit is a maximum number of responses to return for a list call."),
		queryParam("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
		queryParam("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
		queryParam("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
		queryParam("timeoutSeconds", "integer", "Timeout for the list/watch call."),
		queryParam("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
	}
	deleteParams = []spec.Parameter{
		dryRun,
		queryParam("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
		queryParam("propagationPolicy", "string", "Whether and how garbage collection will be performed."),
	}
	logParams = []spec.Parameter{
		queryParam("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
		queryParam("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
		queryParam("insecureSkipTLSVerifyBackend", "boolean", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to."),
		queryParam("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output."),
		queryParam("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
		queryParam("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
		queryParam("sinceTime", "string", "An RFC3339 timestamp from which to show logs."),
		queryParam("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
		queryParam("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
	}
)

func ref(name string) *spec.Schema { return spec.RefSchema("#/definitions/" + name) }

func operation(id, action string, gvk map[string]any, params []spec.Parameter, body, response *spec.Schema, codes ...int) *spec.Operation {
	op := &spec.Operation{OperationProps: spec.OperationProps{ID: id}}
	op.Consumes = []string{"*/*"}
	op.Produces = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	op.Schemes = []string{"https"}
	op.Tags = []string{"core_v1"}
	op.AddExtension("x-kubernetes-action", action)
	op.AddExtension("x-kubernetes-group-version-kind", gvk)
	op.Parameters = append(op.Parameters, params...)
	if body != nil {
		op.Parameters = append(op.Parameters, spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: true, Schema: body}})
	}
	op.Responses = &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{
		http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}},
	}}}
	for _, code := range codes {
		op.Responses.StatusCodeResponses[code] = spec.Response{ResponseProps: spec.ResponseProps{Description: http.StatusText(code), Schema: response}}
	}
	return op
}

// addPaths adds the operations on one resource, named like the
// kube-apiserver's (readCoreV1NamespacedPod, ...).
func addPaths(paths map[string]spec.PathItem, res *registry.Resource) {
	model := "io.k8s.api.core.v1." + res.Kind
	gvk := map[string]any{"group": "", "version": "v1", "kind": res.Kind}
	scope, base := "", "/api/v1/"
	common := []spec.Parameter{pretty}
	if res.Namespaced {
		scope, base = "Namespaced", "/api/v1/namespaces/{namespace}/"
		common = append(common, pathParam("namespace", "object name and auth scope, such as for teams and projects"))
	}
	named := append(append([]spec.Parameter{}, common...), pathParam("name", "name of the "+res.Kind))
	can := func(verb string) bool { return contains(res.Verbs, verb) }
	write := []spec.Parameter{dryRun, fieldManager, fieldValidationParam}
	patchBody := &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}}
	status := ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status")

	coll := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: common}}
	coll.Get = operation("listCoreV1"+scope+res.Kind, "list", gvk, listParams, nil, ref(model+"List"), http.StatusOK)
	if can("create") {
		coll.Post = operation("createCoreV1"+scope+res.Kind, "post", gvk, write, ref(model), ref(model), http.StatusOK, http.StatusCreated, http.StatusAccepted)
	}
	if can("deletecollection") {
		coll.Delete = operation("deleteCoreV1Collection"+scope+res.Kind, "deletecollection", gvk, append(append([]spec.Parameter{}, deleteParams...), listParams...),
			ref("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), status, http.StatusOK)
	}
	paths[base+res.Name] = coll

	item := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: named}}
	item.Get = operation("readCoreV1"+scope+res.Kind, "get", gvk, nil, nil, ref(model), http.StatusOK)
	if can("update") {
		item.Put = operation("replaceCoreV1"+scope+res.Kind, "put", gvk, write, ref(model), ref(model), http.StatusOK, http.StatusCreated)
	}
	if can("patch") {
		item.Patch = operation("patchCoreV1"+scope+res.Kind, "patch", gvk, append(append([]spec.Parameter{}, write...), queryParam("force", "boolean", "Force is going to \"force\" Apply requests.")),
			patchBody, ref(model), http.StatusOK, http.StatusCreated)
		item.Patch.Consumes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}
	}
	if can("delete") {
		deleted := status
		if res.ReturnDeletedObject {
			deleted = ref(model)
		}
		item.Delete = operation("deleteCoreV1"+scope+res.Kind, "delete", gvk, deleteParams, ref("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), deleted, http.StatusOK, http.StatusAccepted)
	}
	paths[base+res.Name+"/{name}"] = item

	for _, sub := range res.Subresources {
		p := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: named}}
		switch sub {
		case "status":
			p.Get = operation("readCoreV1"+scope+res.Kind+"Status", "get", gvk, nil, nil, ref(model), http.StatusOK)
			p.Put = operation("replaceCoreV1"+scope+res.Kind+"Status", "put", gvk, write, ref(model), ref(model), http.StatusOK, http.StatusCreated)
			p.Patch = operation("patchCoreV1"+scope+res.Kind+"Status", "patch", gvk, write, patchBody, ref(model), http.StatusOK, http.StatusCreated)
			p.Patch.Consumes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}
		case "log":
			p.Get = operation("readCoreV1"+scope+res.Kind+"Log", "get", gvk, logParams, nil, &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}}, http.StatusOK)
			p.Get.Produces = []string{"text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
		}
		paths[base+res.Name+"/{name}/"+sub] = p
	}
	if res.Namespaced {
		all := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: []spec.Parameter{pretty}}}
		all.Get = operation("listCoreV1"+res.Kind+"ForAllNamespaces", "list", gvk, listParams, nil, ref(model+"List"), http.StatusOK)
		paths["/api/v1/"+res.Name] = all
	}
}
