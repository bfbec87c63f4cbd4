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
	obj, err := s.decodeObject(w, r, req.res, data)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if obj, err = s.trackFields(r, req, req.res.New(), obj, o.FieldManager); err != nil {
		s.writeError(w, r, err)
		return
	}
	created, err := s.reg.Create(r.Context(), req.res, req.namespace, obj, &o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, http.StatusCreated, created)
}
