package apiserver

import (
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/registry"
)

// request is a parsed resource request: /api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUBRESOURCE]].
type request struct {
	res *registry.Resource
	// group is the named API group of /apis/GROUP/VERSION requests; nil for /api/v1.
	group       *apiGroup
	namespace   string
	name        string
	subresource string
}

// ServeHTTP authenticates the request (client certificate or bearer token)
// and routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, ok := s.authenticate(r)
	if !ok {
		s.writeStatus(w, r, &metav1.Status{
			Status: metav1.StatusFailure, Message: "Unauthorized",
			Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized,
		})
		return
	}
	s.log.Debug("request", "method", r.Method, "url", r.URL.String(), "user", user)
	path := strings.Trim(r.URL.Path, "/")
	switch path {
	case "healthz", "livez", "readyz":
		s.serveHealth(w, r)
		return
	case "version":
		s.serveVersion(w, r)
		return
	case "api":
		s.serveAPIVersions(w, r)
		return
	case "apis":
		s.serveAPIGroups(w, r)
		return
	case "api/v1":
		s.serveResourceList(w, r)
		return
	}
	if path == "openapi" || strings.HasPrefix(path, "openapi/") {
		s.openapi.ServeHTTP(w, r)
		return
	}
	if path == "debug/pprof" || strings.HasPrefix(path, "debug/pprof/") {
		serveProfiling(w, r)
		return
	}
	parts := strings.Split(path, "/")
	if parts[0] == "apis" {
		s.serveGroupPath(w, r, parts[1:])
		return
	}
	if len(parts) < 3 || parts[0] != "api" || parts[1] != "v1" {
		s.writeError(w, r, notFoundPath())
		return
	}
	req, ok := s.parse(parts[2:], nil)
	if !ok {
		s.writeError(w, r, notFoundPath())
		return
	}
	s.serveResource(w, r, req)
}

// serveGroupPath serves /apis/GROUP, /apis/GROUP/VERSION and the
// resources under it.
func (s *Server) serveGroupPath(w http.ResponseWriter, r *http.Request, parts []string) {
	g, ok := findGroup(parts[0], "")
	if !ok {
		s.writeError(w, r, notFoundPath())
		return
	}
	if len(parts) == 1 {
		s.serveAPIGroup(w, r, g)
		return
	}
	if g.gv.Version != parts[1] {
		s.writeError(w, r, notFoundPath())
		return
	}
	if len(parts) == 2 {
		s.serveGroupResourceList(w, r, g)
		return
	}
	req, ok := s.parse(parts[2:], g)
	if !ok || !contains(g.resources, req.res.Name) || req.subresource != "" {
		s.writeError(w, r, notFoundPath())
		return
	}
	s.serveResource(w, r, req)
}

// parse splits the path after /api/v1 or /apis/GROUP/VERSION.
func (s *Server) parse(parts []string, group *apiGroup) (*request, bool) {
	req := &request{group: group}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		if res, ok := s.reg.Resource(parts[2]); ok && res.Namespaced {
			req.namespace = parts[1]
			parts = parts[2:]
		}
	}
	res, ok := s.reg.Resource(parts[0])
	if !ok || len(parts) > 3 || (res.Group != "" && group == nil) || (group != nil && res.Group != "" && res.Group != group.gv.Group) {
		return nil, false
	}
	req.res = res
	if len(parts) > 1 {
		req.name = parts[1]
	}
	if len(parts) > 2 {
		req.subresource = parts[2]
		if !contains(res.Subresources, req.subresource) {
			return nil, false
		}
	}
	// A namespaced object needs its namespace in the path.
	if res.Namespaced && req.namespace == "" && req.name != "" {
		return nil, false
	}
	return req, true
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, req *request) {
	switch {
	case req.name == "":
		switch r.Method {
		case http.MethodGet:
			if isWatch(r) {
				s.watch(w, r, req)
			} else {
				s.list(w, r, req)
			}
			return
		case http.MethodPost:
			if req.res.Namespaced && req.namespace == "" {
				break
			}
			s.create(w, r, req)
			return
		case http.MethodDelete:
			s.deleteCollection(w, r, req)
			return
		}
	case req.subresource == "eviction" || req.subresource == "binding":
		if r.Method == http.MethodPost {
			if req.subresource == "eviction" {
				s.evict(w, r, req)
			} else {
				s.bind(w, r, req)
			}
			return
		}
	case req.subresource == "log":
		if r.Method == http.MethodGet {
			s.logs(w, r, req)
			return
		}
	case streamOptionsKind[req.subresource] != "":
		if r.Method == http.MethodGet || r.Method == http.MethodPost {
			s.serveStream(w, r, req)
			return
		}
	case req.subresource == "status" || req.subresource == "ephemeralcontainers" || req.subresource == "":
		switch r.Method {
		case http.MethodGet:
			if isWatch(r) && req.subresource == "" {
				// The older form of a watch on one object.
				s.watch(w, r, req)
				return
			}
			s.get(w, r, req)
			return
		case http.MethodPut:
			s.update(w, r, req)
			return
		case http.MethodPatch:
			s.patch(w, r, req)
			return
		case http.MethodDelete:
			if req.subresource == "" {
				s.delete(w, r, req)
				return
			}
		}
	}
	s.writeError(w, r, apierrors.NewMethodNotSupported(schemaGR(req.res.Name), strings.ToLower(r.Method)))
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "1" || v == "true"
}

func notFoundPath() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Message: "the server could not find the requested resource",
		Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
		Details: &metav1.StatusDetails{},
	}}
}
