package apiserver

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// deleteOptions reads DeleteOptions from the body (kubectl sends them
// there) and the query.
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	o := &metav1.DeleteOptions{}
	data, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		dec, err := bodyDecoder(r)
		if err != nil {
			return nil, err
		}
		obj, _, err := dec.Decode(data, &schema.GroupVersionKind{Version: "v1", Kind: "DeleteOptions"}, o)
		if err != nil && !runtime.IsStrictDecodingError(err) {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
		if obj, ok := obj.(*metav1.DeleteOptions); ok {
			o = obj
		}
	}
	if len(r.URL.Query()) > 0 {
		q := &metav1.DeleteOptions{}
		if err := decodeParams(r, q); err != nil {
			return nil, err
		}
		if q.GracePeriodSeconds != nil {
			o.GracePeriodSeconds = q.GracePeriodSeconds
		}
		if q.PropagationPolicy != nil {
			o.PropagationPolicy = q.PropagationPolicy
		}
		if len(q.DryRun) > 0 {
			o.DryRun = q.DryRun
		}
	}
	return o, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, req *request) {
	o, err := s.deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	obj, _, err := s.regDelete(r.Context(), req, req.namespace, req.name, o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.res.ReturnDeletedObject {
		s.writeObject(w, http.StatusOK, obj)
		return
	}
	s.writeStatus(w, r, &metav1.Status{
		Status: metav1.StatusSuccess, Code: http.StatusOK,
		Details: &metav1.StatusDetails{Name: req.name, Kind: req.res.Name, UID: obj.GetUID()},
	})
}

// deleteCollection deletes every object matching the list options, as
// DELETE on a collection does, and answers with the deleted objects.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, req *request) {
	if !contains(req.res.Verbs, "deletecollection") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schemaGR(req.res.Name), "deletecollection"))
		return
	}
	o, err := s.deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var lo metav1.ListOptions
	if err := decodeParams(r, &lo); err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.regList(r.Context(), req, req.namespace, &lo)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, _ := meta.ExtractList(list)
	var deleted []runtime.Object
	for _, it := range items {
		m, _ := meta.Accessor(it)
		opts := o.DeepCopy()
		obj, _, err := s.regDelete(r.Context(), req, m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		deleted = append(deleted, obj)
	}
	if err := meta.SetList(list, deleted); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, http.StatusOK, list)
}
