package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod-dev/peapod/internal/store"
)

// watch streams watch events as newline-separated JSON WatchEvents over a
// chunked response, one flush per event.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, req *request) {
	var o metav1.ListOptions
	if err := decodeParams(r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.name != "" {
		o.FieldSelector = joinSelectors(o.FieldSelector, "metadata.name="+req.name)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if o.TimeoutSeconds != nil && *o.TimeoutSeconds > 0 {
		t := s.reg.Clock().NewTimer(time.Duration(*o.TimeoutSeconds) * time.Second)
		defer t.Stop()
		go func() {
			select {
			case <-t.C():
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	wi, err := s.regWatch(ctx, req, req.namespace, &o)
	expired := apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
	if err != nil && !expired {
		s.writeError(w, r, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(typ watch.EventType, obj runtime.Object) bool {
		data, err := json.Marshal(obj)
		if err != nil {
			s.log.Error("encoding watch event", "err", err)
			return false
		}
		if err := enc.Encode(metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: data}}); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if expired {
		// As the watch cache does: a 200 whose only event is the 410 error.
		st := err.(apierrors.APIStatus).Status()
		st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		send(watch.Error, &st)
		return
	}
	defer wi.Stop()
	if flusher != nil {
		flusher.Flush()
	}
	table := acceptsTable(r)
	var to metav1.TableOptions
	if table {
		decodeParams(r, &to)
	}
	first := true
	for ev := range wi.ResultChan() {
		obj := ev.Object
		if table && ev.Type != watch.Bookmark {
			t, err := s.toTable(req.res.Name, []store.Object{obj.(store.Object)}, tableOptions{includeObject: to.IncludeObject, noHeaders: !first || to.NoHeaders})
			if err != nil {
				s.log.Error("watch table", "err", err)
				return
			}
			first = false
			obj = t
		} else {
			setKind(obj)
		}
		if !send(ev.Type, obj) {
			return
		}
	}
}

func joinSelectors(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}
