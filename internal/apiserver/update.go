package apiserver

import (
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/store"
)

func (s *Server) update(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.UpdateOptions
	if err := decodeParams(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	data, err := s.readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	obj, err := s.decodeObject(w, r, req, data)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	live, err := s.regGet(r.Context(), req, req.namespace, req.name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if obj, err = s.trackFields(r, req, live, obj, o.FieldManager); err != nil {
		s.writeError(w, r, err)
		return
	}
	updated, err := s.write(r, req, obj, &o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, http.StatusOK, updated)
}

// write writes obj through the main resource or its status or
// ephemeralcontainers subresource.
func (s *Server) write(r *http.Request, req *request, obj store.Object, o *metav1.UpdateOptions) (store.Object, error) {
	switch req.subresource {
	case "status":
		return s.reg.UpdateStatus(r.Context(), req.res, req.namespace, req.name, obj, o)
	case "ephemeralcontainers":
		return s.reg.UpdateEphemeralContainers(r.Context(), req.res, req.namespace, req.name, obj, o)
	}
	return s.regUpdate(r.Context(), req, req.namespace, req.name, obj, o)
}
