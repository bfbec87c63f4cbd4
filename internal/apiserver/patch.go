package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	"github.com/peapod-dev/peapod/internal/store"
)

// patchRetries bounds the retries of a patch that lost a race with another
// write (patches without a resourceVersion apply to the latest object).
const patchRetries = 5

func (s *Server) patch(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.PatchOptions
	if err := decodeParams(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	pt := types.PatchType(mediaType)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyPatchType:
	default:
		s.writeError(w, r, unsupportedMediaType(fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s",
			types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyPatchType)))
		return
	}
	if pt == types.ApplyPatchType && o.FieldManager == "" {
		s.writeError(w, r, apierrors.NewBadRequest("fieldManager is required for apply requests"))
		return
	}
	patch, err := s.readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.regGet(r.Context(), req, req.namespace, req.name)
		// Server-side apply creates what does not exist yet.
		creating := pt == types.ApplyPatchType && req.subresource == "" && apierrors.IsNotFound(err)
		if creating {
			cur, err = newObject(req), nil
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var obj store.Object
		if pt == types.ApplyPatchType {
			obj, err = s.applyConfiguration(req, cur, patch, &o)
		} else {
			obj, err = s.patchObject(w, r, req, pt, cur, patch, &o)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var (
			out  store.Object
			code = http.StatusOK
		)
		if creating {
			out, err = s.regCreate(r.Context(), req, req.namespace, obj, &metav1.CreateOptions{DryRun: o.DryRun, FieldManager: o.FieldManager})
			code = http.StatusCreated
		} else {
			out, err = s.write(r, req, obj, &metav1.UpdateOptions{DryRun: o.DryRun, FieldManager: o.FieldManager, FieldValidation: o.FieldValidation})
		}
		// Losing a race with another write (the patch named no
		// resourceVersion of its own) means patching the newer object.
		lostRace := apierrors.IsAlreadyExists(err) ||
			apierrors.IsConflict(err) && obj.GetResourceVersion() == cur.GetResourceVersion() && !patchSetsResourceVersion(pt, patch)
		if lostRace && attempt < patchRetries {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeObject(w, code, out)
		return
	}
}

// patchObject applies a JSON, merge or strategic merge patch to cur and
// records the change in managedFields.
func (s *Server) patchObject(w http.ResponseWriter, r *http.Request, req *request, pt types.PatchType, cur store.Object, patch []byte, o *metav1.PatchOptions) (store.Object, error) {
	live := copyObj(cur)
	setKind(cur)
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, err := applyPatch(pt, curJSON, patch, newObject(req))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	obj, err := s.decodeObject(w, r, req, patched)
	if err != nil {
		return nil, err
	}
	return s.trackFields(r, req, live, obj, o.FieldManager)
}

// applyConfiguration is server-side apply: the applied configuration is
// merged into live by structured-merge-diff, which owns the fields it sets
// for the manager and refuses (409) to take fields others own unless forced.
func (s *Server) applyConfiguration(req *request, live store.Object, patch []byte, o *metav1.PatchOptions) (store.Object, error) {
	cfg := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(patch, &cfg.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
	}
	fm, err := s.fields.get(reqGV(req), req.res, req.subresource)
	if err != nil {
		return nil, err
	}
	out, err := fm.Apply(live, cfg, o.FieldManager, o.Force != nil && *o.Force)
	if err != nil {
		return nil, err
	}
	obj, ok := out.(store.Object)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("apply returned a %T", out))
	}
	return obj, nil
}

func copyObj(o store.Object) store.Object { return o.DeepCopyObject().(store.Object) }

func applyPatch(pt types.PatchType, cur, patch []byte, schema any) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch pt {
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			out, err = p.Apply(cur)
		}
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(cur, patch)
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(cur, patch, schema)
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return out, nil
}

// patchSetsResourceVersion: the patch itself names a resourceVersion, so a
// conflict is the client's precondition failing.
func patchSetsResourceVersion(pt types.PatchType, patch []byte) bool {
	if pt == types.JSONPatchType {
		var ops []map[string]any
		if json.Unmarshal(patch, &ops) == nil {
			for _, op := range ops {
				if op["path"] == "/metadata/resourceVersion" {
					return true
				}
			}
		}
		return false
	}
	var m struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	return json.Unmarshal(patch, &m) == nil && m.Metadata.ResourceVersion != ""
}
