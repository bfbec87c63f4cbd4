package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/peapod-dev/peapod/internal/store"
)

var (
	scheme = newScheme()
	// strictJSON and strictYAML report unknown and duplicate fields as
	// strict decoding errors while still decoding the object.
	strictJSON = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
	strictYAML = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	// kubectl's typed clients send protobuf bodies.
	protobufCodec = protobuf.NewSerializer(scheme, scheme)
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	if err := coordinationv1.AddToScheme(s); err != nil {
		panic(err)
	}
	// events.k8s.io/v1 Events, views of the stored core Events (groups.go).
	if err := eventsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	// Evictions (pods/eviction) come as policy/v1 or v1beta1.
	s.AddKnownTypes(policyv1.SchemeGroupVersion, &policyv1.Eviction{})
	s.AddKnownTypes(policyv1beta1.SchemeGroupVersion, &policyv1beta1.Eviction{})
	metav1.AddToGroupVersion(s, policyv1.SchemeGroupVersion)
	metav1.AddToGroupVersion(s, policyv1beta1.SchemeGroupVersion)
	s.AddKnownTypes(schema.GroupVersion{Version: "v1"}, &metav1.TableOptions{})
	// Clients send DeleteOptions as meta.k8s.io/v1 too.
	s.AddKnownTypes(metav1.SchemeGroupVersion, &metav1.DeleteOptions{})
	return s
}

// paramCodec decodes query parameters with the conversions AddToGroupVersion
// registered (metav1.ParameterCodec's own scheme has none).
var paramCodec = runtime.NewParameterCodec(scheme)

func schemaGR(resource string) schema.GroupResource { return schema.GroupResource{Resource: resource} }

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	w.Write(data)
}

// writeObject answers with a core/v1 object, stamped with its kind.
func (s *Server) writeObject(w http.ResponseWriter, code int, obj runtime.Object) {
	setKind(obj)
	writeJSON(w, code, "application/json", obj)
}

// setKind fills apiVersion and kind from the scheme (stored objects have none).
func setKind(obj runtime.Object) {
	if gvks, _, err := scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	}
}

func (s *Server) writeStatus(w http.ResponseWriter, r *http.Request, st *metav1.Status) {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), "application/json", st)
}

// writeError answers with the API Status for err; errors that are not API
// errors are internal errors.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		s.log.Error("request failed", "method", r.Method, "url", r.URL.String(), "err", err)
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	s.writeStatus(w, r, &st)
}

// readBody reads the request body up to the configured limit (413 above it).
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxRequestBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if int64(len(data)) > s.cfg.MaxRequestBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", s.cfg.MaxRequestBodyBytes))
	}
	return data, nil
}

// decodeObject decodes a request body into a new object of res, applying
// the fieldValidation directive (Strict refuses unknown or duplicate fields,
// Warn — the default — answers with warnings, Ignore drops them).
func (s *Server) decodeObject(w http.ResponseWriter, r *http.Request, req *request, data []byte) (store.Object, error) {
	validation, err := fieldValidation(r)
	if err != nil {
		return nil, err
	}
	dec, err := bodyDecoder(r)
	if err != nil {
		return nil, err
	}
	res, gv := req.res, reqGV(req)
	into := newObject(req)
	obj, gvk, err := dec.Decode(data, &schema.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: res.Kind}, into)
	strictErr := err != nil && runtime.IsStrictDecodingError(err)
	if err != nil && !strictErr {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", res.Kind, gv.Version, res.Kind, err))
	}
	if gvk.GroupVersion() != gv {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion().String(), gv.String()))
	}
	typed, ok := obj.(store.Object)
	if !ok || gvk.Kind != res.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %s", res.Kind, gvk.Kind))
	}
	if strictErr {
		switch validation {
		case metav1.FieldValidationStrict:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", res.Kind, gv.Version, res.Kind, err))
		case metav1.FieldValidationWarn:
			if se, ok := runtime.AsStrictDecodingError(err); ok {
				for _, e := range se.Errors() {
					w.Header().Add("Warning", fmt.Sprintf("299 - %q", e.Error()))
				}
			}
		}
	}
	return typed, nil
}

// bodyDecoder picks the decoder for the request's Content-Type.
func bodyDecoder(r *http.Request) (runtime.Decoder, error) {
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct {
	case "", "application/json":
		return strictJSON, nil
	case "application/yaml":
		return strictYAML, nil
	case runtime.ContentTypeProtobuf:
		return protobufCodec, nil
	}
	return nil, unsupportedMediaType("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
}

func fieldValidation(r *http.Request) (string, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return metav1.FieldValidationWarn, nil
	case metav1.FieldValidationStrict, metav1.FieldValidationWarn, metav1.FieldValidationIgnore:
		return v, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation parameter unsupported: %v. Supported parameters are %s, %s, and %s", v,
		metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict))
}

// decodeParams decodes query parameters into metav1 options.
func decodeParams(r *http.Request, into runtime.Object) error {
	if err := paramCodec.DecodeParameters(r.URL.Query(), schema.GroupVersion{Version: "v1"}, into); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

// acceptsTable: the client asked for a server-side Table (kubectl get does).
func acceptsTable(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "application/json" && mt != "*/*") {
			continue
		}
		if params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
			return true
		}
		if params["as"] == "" {
			// A plain type listed before any Table preference wins.
			return false
		}
	}
	return false
}

func unsupportedMediaType(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType, Message: msg,
	}}
}
