package apiserver

import (
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/store"
)

func (s *Server) get(w http.ResponseWriter, r *http.Request, req *request) {
	obj, err := s.regGet(r.Context(), req, req.namespace, req.name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if acceptsTable(r) {
		s.writeTable(w, r, req, []store.Object{obj}, nil)
		return
	}
	s.writeObject(w, http.StatusOK, obj)
}

// writeTable answers with the objects as a Table; listMeta carries the list's
// resourceVersion and continue token.
func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, req *request, objs []store.Object, listMeta *metav1.ListMeta) {
	var to metav1.TableOptions
	if err := decodeParams(r, &to); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.toTable(req.res.Name, objs, tableOptions{includeObject: to.IncludeObject, noHeaders: to.NoHeaders})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if listMeta != nil {
		t.ListMeta = *listMeta
	}
	writeJSON(w, http.StatusOK, "application/json", t)
}
