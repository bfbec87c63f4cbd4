package openapi

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"
)

// TypeConverter returns the converter between the served objects and
// structured-merge-diff's typed values, built from the same schemas as the
// documents: what server-side apply and managedFields need
// (managedfields.NewDefaultFieldManager). kube-apiserver builds it the same
// way, from the OpenAPI v3 definitions of its resources. It is built once.
func TypeConverter() (managedfields.TypeConverter, error) {
	return typeConverter()
}

var typeConverter = sync.OnceValues(func() (managedfields.TypeConverter, error) {
	namer, err := newDefinitionNamer()
	if err != nil {
		return nil, err
	}
	// The kinds the storages take (the connect options are no objects).
	var names []string
	for _, g := range groups() {
		for _, s := range g.storage {
			if name := util.GetCanonicalTypeName(s.object); s.verbs != verbConnect && !contains(names, name) {
				names = append(names, name)
			}
		}
	}
	defs, err := builder3.BuildOpenAPIDefinitionsForResources(&common.OpenAPIV3Config{
		GetDefinitionName: namer.name,
		GetDefinitions:    GetOpenAPIDefinitions,
	}, names...)
	if err != nil {
		return nil, fmt.Errorf("build the schemas of the served kinds: %w", err)
	}
	tc, err := managedfields.NewTypeConverter(defs, false)
	if err != nil {
		return nil, fmt.Errorf("type converter: %w", err)
	}
	return tc, nil
})
