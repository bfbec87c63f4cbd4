package apiserver

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// created answers a create subresource that returns no object, as the
// kube-apiserver does for evictions and bindings.
func (s *Server) created(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// decodeBody decodes a request body of one of the accepted kinds.
func (s *Server) decodeBody(r *http.Request, def schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	data, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	dec, err := bodyDecoder(r)
	if err != nil {
		return nil, err
	}
	obj, _, err := dec.Decode(data, &def, into)
	if err != nil && !runtime.IsStrictDecodingError(err) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", def.Kind, def.GroupVersion().String(), def.Kind, err))
	}
	return obj, nil
}

// evict serves POST pods/NAME/eviction (policy/v1 or v1beta1 Eviction).
func (s *Server) evict(w http.ResponseWriter, r *http.Request, req *request) {
	obj, err := s.decodeBody(r, policyv1.SchemeGroupVersion.WithKind("Eviction"), &policyv1.Eviction{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var (
		name string
		opts *metav1.DeleteOptions
	)
	switch e := obj.(type) {
	case *policyv1.Eviction:
		name, opts = e.Name, e.DeleteOptions
	case *policyv1beta1.Eviction:
		name, opts = e.Name, e.DeleteOptions
	default:
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("not a Eviction object: %T", obj)))
		return
	}
	if name != req.name {
		s.writeError(w, r, apierrors.NewBadRequest("name in URL does not match name in Eviction object"))
		return
	}
	if err := s.reg.EvictPod(r.Context(), req.namespace, req.name, opts); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.created(w, r)
}

// bind serves POST pods/NAME/binding (core/v1 Binding).
func (s *Server) bind(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.CreateOptions
	if err := decodeParams(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	obj, err := s.decodeBody(r, corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, ok := obj.(*corev1.Binding)
	if !ok {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("not a Binding object: %T", obj)))
		return
	}
	if err := s.reg.BindPod(r.Context(), req.namespace, req.name, b, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.created(w, r)
}
