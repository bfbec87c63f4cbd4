package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
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
	pt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch types.PatchType(pt) {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	default:
		s.writeError(w, r, unsupportedMediaType(fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType)))
		return
	}
	patch, err := s.readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.reg.Get(r.Context(), req.res, req.namespace, req.name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		setKind(cur)
		curJSON, err := json.Marshal(cur)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		patched, err := applyPatch(types.PatchType(pt), curJSON, patch, req.res.New())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r.Header.Set("Content-Type", "application/json")
		obj, err := s.decodeObject(w, r, req.res, patched)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		updated, err := s.write(r, req, obj, &metav1.UpdateOptions{DryRun: o.DryRun, FieldManager: o.FieldManager, FieldValidation: o.FieldValidation})
		// A conflict on a version the patch did not name is a lost race: retry.
		if apierrors.IsConflict(err) && obj.GetResourceVersion() == cur.GetResourceVersion() && attempt < patchRetries && !patchSetsResourceVersion(types.PatchType(pt), patch) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeObject(w, http.StatusOK, updated)
		return
	}
}

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
