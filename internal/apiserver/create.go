package apiserver

import (
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (s *Server) create(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.CreateOptions
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
	if obj, err = s.trackFields(r, req, newObject(req), obj, o.FieldManager); err != nil {
		s.writeError(w, r, err)
		return
	}
	created, err := s.regCreate(r.Context(), req, req.namespace, obj, &o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, http.StatusCreated, created)
}
