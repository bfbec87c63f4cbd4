package apiserver

import (
	"net/http"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/store"
)

func (s *Server) list(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.ListOptions
	if err := decodeParams(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.regList(r.Context(), req, req.namespace, &o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if acceptsTable(r) {
		items, err := meta.ExtractList(list)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		objs := make([]store.Object, len(items))
		for i, it := range items {
			objs[i] = it.(store.Object)
		}
		la, _ := meta.ListAccessor(list)
		s.writeTable(w, r, req, objs, &metav1.ListMeta{ResourceVersion: la.GetResourceVersion(), Continue: la.GetContinue()})
		return
	}
	s.writeObject(w, http.StatusOK, list)
}
