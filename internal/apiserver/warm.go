package apiserver

import (
	"net/http/httptest"
)

// warm builds, in the background at start, what the first requests would
// otherwise wait for: the OpenAPI documents kubectl fetches before its
// first create (about half a second) and the field managers every write
// uses.
func (s *Server) warm() {
	for _, path := range []string{"/openapi/v2", "/openapi/v3/api/v1"} {
		s.openapi.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	for _, res := range s.reg.Resources() {
		if res.Group != "" {
			continue
		}
		if _, err := s.fields.get(coreV1, res, ""); err != nil {
			s.log.Warn("preparing field managers", "resource", res.Name, "err", err)
		}
	}
	for _, g := range apiGroups {
		for _, name := range g.resources {
			if res, ok := s.reg.Resource(name); ok {
				if _, err := s.fields.get(g.gv, res, ""); err != nil {
					s.log.Warn("preparing field managers", "resource", g.gv.String()+"/"+name, "err", err)
				}
			}
		}
	}
}
