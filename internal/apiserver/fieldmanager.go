package apiserver

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/peapod-dev/peapod/internal/openapi"
	"github.com/peapod-dev/peapod/internal/registry"
	"github.com/peapod-dev/peapod/internal/store"
)

// fieldManagerMaxLength is the API's limit on a manager's name.
const fieldManagerMaxLength = 128

// fieldManagers tracks managedFields as the kube-apiserver's handlers do:
// one structured-merge-diff field manager per resource and subresource,
// built on first use from internal/openapi's type converter.
type fieldManagers struct {
	mu sync.Mutex
	m  map[string]*managedfields.FieldManager
}

func (f *fieldManagers) get(gv schema.GroupVersion, res *registry.Resource, subresource string) (*managedfields.FieldManager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := gv.String() + "/" + res.Name + "/" + subresource
	if fm, ok := f.m[key]; ok {
		return fm, nil
	}
	tc, err := openapi.TypeConverter()
	if err != nil {
		return nil, fmt.Errorf("field manager type converter: %w", err)
	}
	gvk := gv.WithKind(res.Kind)
	fm, err := managedfields.NewDefaultFieldManager(tc, scheme, scheme, scheme, gvk, gvk.GroupVersion(), subresource, nil)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", key, err)
	}
	if f.m == nil {
		f.m = map[string]*managedfields.FieldManager{}
	}
	f.m[key] = fm
	return fm, nil
}

// trackFields records in obj's managedFields what manager changed going
// from live (an empty object on create) to obj.
func (s *Server) trackFields(r *http.Request, req *request, live, obj store.Object, manager string) (store.Object, error) {
	fm, err := s.fields.get(reqGV(req), req.res, req.subresource)
	if err != nil {
		return nil, err
	}
	return fm.UpdateNoErrors(live, obj, managerOrUserAgent(manager, r.UserAgent())).(store.Object), nil
}

// managerOrUserAgent names the manager of a write without fieldManager
// after the client's user agent, as the kube-apiserver does.
func managerOrUserAgent(manager, userAgent string) string {
	if manager != "" {
		return manager
	}
	var buf bytes.Buffer
	for _, r := range strings.Split(userAgent, "/")[0] {
		if !unicode.IsPrint(r) {
			continue
		}
		if buf.Len()+utf8.RuneLen(r) > fieldManagerMaxLength {
			break
		}
		buf.WriteRune(r)
	}
	return buf.String()
}
