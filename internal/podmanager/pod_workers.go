package podmanager

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// podWorker is the single owner of one pod's lifecycle: all syncs of a pod run on
// its goroutine, one at a time. Updates coalesce: a worker that is busy syncs once
// more when it is done.
type podWorker struct {
	uid    types.UID
	wakeup chan struct{}
	// cancelSync cancels the sync in progress when the pod is deleted meanwhile
	// (a slow pull or hook must not delay termination); nil when terminating.
	cancelSync context.CancelFunc
}

// dispatch wakes (or starts) the worker of the pod.
func (m *Manager) dispatch(ctx context.Context, uid types.UID) {
	m.mu.Lock()
	w := m.workers[uid]
	if w == nil {
		w = &podWorker{uid: uid, wakeup: make(chan struct{}, 1)}
		m.workers[uid] = w
		m.wg.Add(1)
		go m.runWorker(ctx, w)
	}
	m.mu.Unlock()
	select {
	case w.wakeup <- struct{}{}:
	default:
	}
}

func (m *Manager) runWorker(ctx context.Context, w *podWorker) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			delete(m.workers, w.uid)
			m.mu.Unlock()
			return
		case <-w.wakeup:
		}
		syncCtx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		if rec := m.pods[w.uid]; rec != nil && rec.pod != nil && !rec.orphan && !rec.removed && rec.pod.DeletionTimestamp == nil {
			w.cancelSync = cancel
		}
		m.mu.Unlock()
		done := m.syncOnce(syncCtx, w.uid)
		m.mu.Lock()
		w.cancelSync = nil
		m.mu.Unlock()
		cancel()
		if done {
			m.mu.Lock()
			delete(m.workers, w.uid)
			// A wake-up that raced with the end is served by a new worker.
			pending := len(w.wakeup) > 0
			_, known := m.pods[w.uid]
			m.mu.Unlock()
			if pending && known {
				m.dispatch(ctx, w.uid)
			}
			return
		}
	}
}

// syncOnce runs one sync of the pod: the kubelet's SyncPod, SyncTerminatingPod or
// SyncTerminatedPod depending on the pod's state. It returns true when the pod is
// finished with and its worker may end.
func (m *Manager) syncOnce(ctx context.Context, uid types.UID) bool {
	rec, ok := m.record(uid)
	if !ok || rec.pod == nil {
		return true
	}
	pod := rec.pod
	log := m.log.With("pod", podDesc(pod))
	ctx = plog.WithLogger(ctx, log)
	m.clearRequeue(uid)

	switch {
	case rec.orphan || rec.removed:
		// No API object any more: kill what runs (minimum grace), remove it all.
		if err := m.terminatePod(ctx, pod, gracePeriodForRemoved(pod), false); err != nil {
			log.Error("cleaning up a removed pod", "err", err)
			m.requeue(uid, time.Second)
			return false
		}
		m.forget(uid)
		return true

	case pod.DeletionTimestamp != nil:
		if err := m.terminatePod(ctx, pod, gracePeriodForDeletion(pod), true); err != nil {
			log.Error("terminating pod", "err", err)
			m.requeue(uid, time.Second)
			return false
		}
		if err := m.store.DeletePodFinal(ctx, pod.Namespace, pod.Name, pod.UID); err != nil && !apierrors.IsNotFound(err) {
			log.Error("deleting terminated pod", "err", err)
			m.requeue(uid, time.Second)
			return false
		}
		log.Info("pod terminated and deleted")
		m.forget(uid)
		return true

	case rec.terminated:
		return false

	case isTerminalPhase(pod.Status.Phase) || isTerminalPhase(m.status.phase(uid)):
		// A pod that ran to completion (or failure) under its restart policy:
		// stop its sandbox and release its cgroup, keep its containers for logs.
		if err := m.stopTerminalPod(ctx, pod); err != nil {
			log.Error("stopping terminal pod", "err", err)
			m.requeue(uid, time.Second)
			return false
		}
		m.markTerminated(uid)
		return false
	}

	requeue, err := m.syncPod(ctx, pod)
	if err != nil {
		log.Warn("sync pod", "err", err)
	}
	if requeue > 0 {
		m.requeue(uid, requeue)
	}
	return false
}

// gracePeriodForDeletion is the kubelet's: deletionGracePeriodSeconds when set,
// else the pod's terminationGracePeriodSeconds, else 30 s.
func gracePeriodForDeletion(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return defaultTerminationGracePeriod
}

// gracePeriodForRemoved: a pod that vanished from the API was force-deleted
// (grace 0, raised to the 2 s minimum by killContainer) or is an orphan.
func gracePeriodForRemoved(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	return 0
}

func isTerminalPhase(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// podDesc is util/format.Pod: "name_namespace(uid)".
func podDesc(pod *corev1.Pod) string {
	return pod.Name + "_" + pod.Namespace + "(" + string(pod.UID) + ")"
}

// interruptSync cancels the pod's sync in progress, if any, so that its
// termination starts at once; called with m.mu held.
func (m *Manager) interruptSyncLocked(uid types.UID) {
	if w := m.workers[uid]; w != nil && w.cancelSync != nil {
		w.cancelSync()
		w.cancelSync = nil
	}
}
