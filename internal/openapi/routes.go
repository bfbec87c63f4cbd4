package openapi

import (
	"fmt"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kube-openapi/pkg/common"
)

// These mirror kube-apiserver's endpoint installer (k8s.io/apiserver
// pkg/endpoints/installer.go), which builds go-restful routes for every
// storage; kube-openapi's builders turn routes into paths and operations.
// peapod has no go-restful web service, so the routes are built here as
// plain common.Route values with the same paths, operation names,
// parameters, media types, responses and extensions.

const (
	// Route metadata keys; kube-openapi copies "x-" keys onto the operation.
	routeMetaGVK    = "x-kubernetes-group-version-kind"
	routeMetaAction = "x-kubernetes-action"

	prettyDoc = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."
)

var (
	// mediaTypes and streamMediaTypes are what kube-apiserver's serializer
	// advertises (negotiation.MediaTypesForSerializer without CBOR, which is
	// behind a disabled feature gate).
	mediaTypes       = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	streamMediaTypes = []string{"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	allMediaTypes    = append(append([]string{}, mediaTypes...), streamMediaTypes...)

	patchTypes = []string{
		string(types.JSONPatchType),
		string(types.MergePatchType),
		string(types.StrategicMergePatchType),
		string(types.ApplyYAMLPatchType),
	}
)

type param struct {
	name, description, dataType string
	kind                        common.ParameterKind
	required                    bool
}

func (p *param) Name() string                 { return p.name }
func (p *param) Description() string          { return p.description }
func (p *param) Required() bool               { return p.required }
func (p *param) Kind() common.ParameterKind   { return p.kind }
func (p *param) DataType() string             { return p.dataType }
func (p *param) AllowMultiple() bool          { return false }
func (p *param) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", p.name)), nil }

func pathParam(name, description string) *param {
	return &param{name: name, description: description, dataType: "string", kind: common.PathParameterKind, required: true}
}

func queryParam(name, description, dataType string) *param {
	return &param{name: name, description: description, dataType: dataType, kind: common.QueryParameterKind}
}

type response struct {
	code    int
	message string
	model   any
}

func (r response) Code() int       { return r.code }
func (r response) Message() string { return r.message }
func (r response) Model() any      { return r.model }

type route struct {
	method, path, operation, doc string
	params                       []common.Parameter
	consumes, produces           []string
	metadata                     map[string]any
	reads, writes                any
	responses                    []common.StatusCodeResponse
}

func (r *route) Method() string                                   { return r.method }
func (r *route) Path() string                                     { return r.path }
func (r *route) OperationName() string                            { return r.operation }
func (r *route) Parameters() []common.Parameter                   { return r.params }
func (r *route) Description() string                              { return r.doc }
func (r *route) Consumes() []string                               { return r.consumes }
func (r *route) Produces() []string                               { return r.produces }
func (r *route) Metadata() map[string]any                         { return r.metadata }
func (r *route) RequestPayloadSample() any                        { return r.reads }
func (r *route) ResponsePayloadSample() any                       { return r.writes }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

func (r *route) returns(code int, message string, model any) {
	r.responses = append(r.responses, response{code, message, model})
}

// read sets the request body, a required "body" parameter unless the
// operation says otherwise (go-restful's RouteBuilder.Reads).
func (r *route) read(sample any, required bool) {
	r.reads = sample
	r.params = append(r.params, &param{name: "body", dataType: reflect.TypeOf(sample).String(), kind: common.BodyParameterKind, required: required})
}

// objectParams adds the top-level scalar fields of an options struct as query
// parameters, described by its SwaggerDoc (the installer's AddObjectParams).
func (r *route) objectParams(obj runtime.Object, excluded ...string) error {
	t := reflect.TypeOf(obj).Elem()
	var docs map[string]string
	if d, ok := obj.(interface{ SwaggerDoc() map[string]string }); ok {
		docs = d.SwaggerDoc()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		switch f.Type.Kind() {
		case reflect.Interface, reflect.Struct:
			continue
		case reflect.Pointer:
			// The installer skips pointers to structs; its exception for
			// metav1.Time compares the type's printed name "v1.Time" with
			// "metav1.Time" and never matches, so *metav1.Time fields
			// (PodLogOptions.SinceTime) are not parameters either.
			if k := f.Type.Elem().Kind(); k == reflect.Interface || k == reflect.Struct {
				continue
			}
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || contains(excluded, name) {
			continue
		}
		dataType, err := queryParamType(f.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		r.params = append(r.params, queryParam(name, docs[name], dataType))
	}
	return nil
}

// queryParamType is the JSON type of an options field (the installer's
// typeToJSON); slices are documented as their element type, as go-restful
// has no array query parameters.
func queryParamType(t reflect.Type) (string, error) {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint8, reflect.Uint32, reflect.Uint64:
		return "integer", nil
	case reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.String:
		return "string", nil
	}
	return "", fmt.Errorf("no query parameter type for %s", t)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// action is one route to install: a verb at a path (the installer's action).
type action struct {
	verb          string // GET LIST POST PUT PATCH DELETE DELETECOLLECTION WATCH WATCHLIST CONNECT
	path          string
	params        []common.Parameter
	allNamespaces bool
}

// routeContainer is one group version's routes under its prefix.
type routeContainer struct {
	root   string
	routes []common.Route
}

func (c *routeContainer) RootPath() string                   { return c.root }
func (c *routeContainer) PathParameters() []common.Parameter { return nil }
func (c *routeContainer) Routes() []common.Route             { return c.routes }

// buildRoutes returns the routes of a group version, in the installer's
// order (storage paths sorted, as g.storage is).
func buildRoutes(g group) (*routeContainer, error) {
	c := &routeContainer{root: g.prefix}
	for _, s := range g.storage {
		routes, err := storageRoutes(g, s)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", g.gv, s.path, err)
		}
		c.routes = append(c.routes, routes...)
	}
	return c, nil
}

func (g group) find(path string) (storage, bool) {
	for _, s := range g.storage {
		if s.path == path {
			return s, true
		}
	}
	return storage{}, false
}

func storageRoutes(g group, s storage) ([]common.Route, error) {
	resource, subresource, isSubresource := strings.Cut(s.path, "/")
	// Operation names and documentation use the parent's kind.
	kind := s.kind.Kind
	if isSubresource {
		parent, ok := g.find(resource)
		if !ok {
			return nil, fmt.Errorf("missing parent storage %q", resource)
		}
		kind = parent.kind.Kind
	}
	has := func(v int) bool { return s.verbs&v != 0 }
	isLister, isWatcher := has(verbList), has(verbWatch)

	nameParam := pathParam("name", "name of the "+s.kind.Kind)
	var actions []action
	appendIf := func(a action, ok bool) {
		if ok {
			actions = append(actions, a)
		}
	}
	resourcePath, itemPath := resource, resource+"/{name}"
	var resourceParams []common.Parameter
	if s.namespaced {
		namespaceParam := pathParam("namespace", "object name and auth scope, such as for teams and projects")
		resourcePath = "namespaces/{namespace}/" + resource
		itemPath = resourcePath + "/{name}"
		resourceParams = []common.Parameter{namespaceParam}
	}
	nameParams := append(append([]common.Parameter{}, resourceParams...), nameParam)
	if isSubresource {
		itemPath += "/" + subresource
		resourcePath = itemPath
		resourceParams = nameParams
	}
	appendIf(action{"LIST", resourcePath, resourceParams, false}, isLister)
	appendIf(action{"POST", resourcePath, resourceParams, false}, has(verbCreate))
	appendIf(action{"DELETECOLLECTION", resourcePath, resourceParams, false}, has(verbDeleteCollection))
	appendIf(action{"WATCHLIST", "watch/" + resourcePath, resourceParams, false}, isLister && isWatcher)
	appendIf(action{"GET", itemPath, nameParams, false}, has(verbGet))
	appendIf(action{"PUT", itemPath, nameParams, false}, has(verbUpdate))
	appendIf(action{"PATCH", itemPath, nameParams, false}, has(verbPatch))
	appendIf(action{"DELETE", itemPath, nameParams, false}, has(verbDelete))
	appendIf(action{"WATCH", "watch/" + itemPath, nameParams, false}, isWatcher)
	appendIf(action{"CONNECT", itemPath, nameParams, false}, has(verbConnect))
	if s.namespaced && !isSubresource {
		appendIf(action{"LIST", resource, nil, true}, isLister)
		appendIf(action{"WATCHLIST", "watch/" + resource, nil, true}, isLister && isWatcher)
	}

	gvk := metav1.GroupVersionKind{Group: s.kind.Group, Version: s.kind.Version, Kind: s.kind.Kind}
	object := indirect(s.object)
	produced := object
	if s.producesObject != nil {
		produced = s.producesObject
	}
	deleted := any(metav1.Status{})
	if s.deleteReturnsObject {
		deleted = produced
	}
	title := strings.ToUpper(subresource[:min(1, len(subresource))]) + subresource[min(1, len(subresource)):]

	var routes []common.Route
	for _, a := range actions {
		namespaced, suffix := "", ""
		if s.namespaced {
			namespaced = "Namespaced"
		}
		if a.allNamespaces {
			namespaced, suffix = "", "ForAllNamespaces"
		}
		name := namespaced + kind + title + suffix
		newRoute := func(method, verb, doc string, produces []string) *route {
			r := &route{
				method: method, path: g.prefix + "/" + a.path, operation: verb + name, doc: doc,
				consumes: []string{"*/*"}, produces: produces,
			}
			r.params = append(r.params, queryParam("pretty", prettyDoc, "string"))
			return r
		}
		var rs []*route
		switch a.verb {
		case "GET":
			doc := "read the specified " + kind
			if isSubresource {
				doc = "read " + subresource + " of the specified " + kind
			}
			r := newRoute("GET", "read", doc, dedup(append(append([]string{}, s.producesMIMETypes...), mediaTypes...)))
			r.returns(200, "OK", produced)
			r.writes = produced
			if s.getOptions != nil {
				if err := r.objectParams(s.getOptions); err != nil {
					return nil, err
				}
			}
			rs = append(rs, r)
		case "LIST":
			doc := "list objects of kind " + kind
			if isLister && isWatcher {
				doc = "list or watch objects of kind " + kind
			}
			if isSubresource {
				doc = "list " + subresource + " of objects of kind " + kind
				if isLister && isWatcher {
					doc = "list or watch " + subresource + " of objects of kind " + kind
				}
			}
			r := newRoute("GET", "list", doc, allMediaTypes)
			list := indirect(s.list)
			r.returns(200, "OK", list)
			r.writes = list
			if err := r.objectParams(&metav1.ListOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "PUT":
			doc := "replace the specified " + kind
			if isSubresource {
				doc = "replace " + subresource + " of the specified " + kind
			}
			r := newRoute("PUT", "replace", doc, mediaTypes)
			r.returns(200, "OK", produced)
			r.returns(201, "Created", produced)
			r.read(object, true)
			r.writes = produced
			if err := r.objectParams(&metav1.UpdateOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "PATCH":
			doc := "partially update the specified " + kind
			if isSubresource {
				doc = "partially update " + subresource + " of the specified " + kind
			}
			r := newRoute("PATCH", "patch", doc, mediaTypes)
			r.consumes = patchTypes
			r.returns(200, "OK", produced)
			r.returns(201, "Created", produced)
			r.read(metav1.Patch{}, true)
			r.writes = produced
			if err := r.objectParams(&metav1.PatchOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "POST":
			article := articleFor(kind)
			doc := "create" + article + kind
			if isSubresource {
				doc = "create " + subresource + " of" + article + kind
			}
			r := newRoute("POST", "create", doc, mediaTypes)
			r.returns(200, "OK", produced)
			r.returns(201, "Created", produced)
			r.returns(202, "Accepted", produced)
			r.read(object, true)
			r.writes = produced
			if err := r.objectParams(&metav1.CreateOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "DELETE":
			article := articleFor(kind)
			doc := "delete" + article + kind
			if isSubresource {
				doc = "delete " + subresource + " of" + article + kind
			}
			r := newRoute("DELETE", "delete", doc, mediaTypes)
			r.writes = deleted
			r.returns(200, "OK", deleted)
			r.returns(202, "Accepted", deleted)
			r.read(metav1.DeleteOptions{}, false)
			if err := r.objectParams(&metav1.DeleteOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "DELETECOLLECTION":
			doc := "delete collection of " + kind
			if isSubresource {
				doc = "delete collection of " + subresource + " of a " + kind
			}
			r := newRoute("DELETE", "deletecollection", doc, mediaTypes)
			r.writes = metav1.Status{}
			r.returns(200, "OK", metav1.Status{})
			r.read(metav1.DeleteOptions{}, false)
			if err := r.objectParams(&metav1.DeleteOptions{}); err != nil {
				return nil, err
			}
			if err := r.objectParams(&metav1.ListOptions{}, "watch", "allowWatchBookmarks"); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "WATCH":
			doc := "watch changes to an object of kind " + kind
			if isSubresource {
				doc = "watch changes to " + subresource + " of an object of kind " + kind
			}
			doc += ". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
			r := newRoute("GET", "watch", doc, allMediaTypes)
			r.returns(200, "OK", metav1.WatchEvent{})
			r.writes = metav1.WatchEvent{}
			if err := r.objectParams(&metav1.ListOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "WATCHLIST":
			doc := "watch individual changes to a list of " + kind
			if isSubresource {
				doc = "watch individual changes to a list of " + subresource + " of " + kind
			}
			doc += ". deprecated: use the 'watch' parameter with a list operation instead."
			r := newRoute("GET", "watch", doc, allMediaTypes)
			r.operation = "watch" + namespaced + kind + title + "List" + suffix
			r.returns(200, "OK", metav1.WatchEvent{})
			r.writes = metav1.WatchEvent{}
			if err := r.objectParams(&metav1.ListOptions{}); err != nil {
				return nil, err
			}
			rs = append(rs, r)
		case "CONNECT":
			for _, method := range s.connectMethods {
				doc := "connect " + method + " requests to " + kind
				if isSubresource {
					doc = "connect " + method + " requests to " + subresource + " of " + kind
				}
				verb := "connect" + method[:1] + strings.ToLower(method[1:])
				// Connect routes take no "pretty" and answer with a stream.
				r := &route{
					method: method, path: g.prefix + "/" + a.path, operation: verb + name, doc: doc,
					consumes: []string{"*/*"}, produces: []string{"*/*"}, writes: "string",
				}
				if s.connectOptions != nil {
					if err := r.objectParams(s.connectOptions); err != nil {
						return nil, err
					}
				}
				rs = append(rs, r)
			}
		default:
			return nil, fmt.Errorf("unknown action %s", a.verb)
		}
		for _, r := range rs {
			r.params = append(r.params, a.params...)
			r.metadata = map[string]any{routeMetaGVK: gvk, routeMetaAction: strings.ToLower(a.verb)}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// indirect returns the struct a pointer points to: the builders name a
// schema after the sample's type.
func indirect(obj runtime.Object) any {
	return reflect.ValueOf(obj).Elem().Interface()
}

// articleFor is the padded article the installer puts before a kind
// (GetArticleForNoun): " a Pod", " an Eviction", " " for plurals.
func articleFor(noun string) string {
	if !strings.HasSuffix(noun, "ss") && strings.HasSuffix(noun, "s") {
		return " "
	}
	if strings.ContainsRune("AEIOUaeiou", rune(noun[0])) {
		return " an "
	}
	return " a "
}

func dedup(list []string) []string {
	var out []string
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
