package openapi

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"net/http"
	"strconv"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The v2 media types kube-apiserver negotiates; the deprecated name is still
// what kubectl and client-go ask for, and is answered with the current one.
const (
	v2ProtobufType           = "com.github.proto-openapi.spec.v2.v1.0+protobuf"
	v2ProtobufTypeDeprecated = "com.github.proto-openapi.spec.v2@v1.0+protobuf"
)

type v2Bytes struct {
	data         []byte
	lastModified time.Time
}

// v2Handler serves /openapi/v2 as kube-openapi's handler.OpenAPIService does
// (that package also pulls in a gzip module this one does without): JSON or
// protobuf by Accept, a quoted ETag of the JSON's SHA-512, Vary: Accept, and
// 304 for a matching If-None-Match.
type v2Handler struct {
	json, proto cached.Value[v2Bytes]
}

func newV2Handler(doc cached.Value[*spec.Swagger]) *v2Handler {
	h := &v2Handler{}
	h.json = cached.Once(cached.Transform(func(s *spec.Swagger, _ string, err error) (v2Bytes, string, error) {
		if err != nil {
			return v2Bytes{}, "", err
		}
		data, err := s.MarshalJSON()
		if err != nil {
			return v2Bytes{}, "", fmt.Errorf("encode OpenAPI v2: %w", err)
		}
		return v2Bytes{data: data, lastModified: time.Now()}, fmt.Sprintf("%X", sha512.Sum512(data)), nil
	}, doc))
	h.proto = cached.Once(cached.Transform(func(b v2Bytes, etag string, err error) (v2Bytes, string, error) {
		if err != nil {
			return v2Bytes{}, "", err
		}
		doc, err := openapiv2.ParseDocument(b.data)
		if err != nil {
			return v2Bytes{}, "", fmt.Errorf("parse OpenAPI v2 for protobuf: %w", err)
		}
		data, err := proto.Marshal(doc)
		if err != nil {
			return v2Bytes{}, "", fmt.Errorf("encode OpenAPI v2 as protobuf: %w", err)
		}
		// Vary: Accept lets the two encodings share the ETag.
		return v2Bytes{data: data, lastModified: b.lastModified}, etag, nil
	}, h.json))
	return h
}

func (h *v2Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "*/*"
	}
	w.Header().Add("Vary", "Accept")
	offers := []struct {
		subType, contentType string
		value                cached.Value[v2Bytes]
	}{
		{"json", "application/json", h.json},
		{v2ProtobufTypeDeprecated, "application/" + v2ProtobufType, h.proto},
		{v2ProtobufType, "application/" + v2ProtobufType, h.proto},
	}
	for _, clause := range goautoneg.ParseAccept(accept) {
		for _, o := range offers {
			if (clause.Type != "application" && clause.Type != "*") || (clause.SubType != o.subType && clause.SubType != "*") {
				continue
			}
			b, etag, err := o.value.Get()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", o.contentType)
			w.Header().Set("Etag", strconv.Quote(etag))
			http.ServeContent(w, r, "/openapi/v2", b.lastModified, bytes.NewReader(b.data))
			return
		}
	}
	w.WriteHeader(http.StatusNotAcceptable)
}
