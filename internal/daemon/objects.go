package daemon

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod-dev/peapod/internal/registry"
)

// objects gives the pod manager the API's ConfigMaps and Secrets (volumes,
// env and imagePullSecrets) and the Node (admission), with the API's
// NotFound errors.
type objects struct{ reg *registry.Registry }

func (o objects) get(ctx context.Context, resource, ns, name string) (any, error) {
	res, ok := o.reg.Resource(resource)
	if !ok {
		return nil, fmt.Errorf("the API serves no %s", resource)
	}
	return o.reg.Get(ctx, res, ns, name)
}

func (o objects) GetConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	obj, err := o.get(ctx, "configmaps", ns, name)
	if err != nil {
		return nil, err
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return nil, fmt.Errorf("configmap %s/%s: stored as %T", ns, name, obj)
	}
	return cm, nil
}

func (o objects) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	obj, err := o.get(ctx, "secrets", ns, name)
	if err != nil {
		return nil, err
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, fmt.Errorf("secret %s/%s: stored as %T", ns, name, obj)
	}
	return s, nil
}

// GetNode gives the pod manager the Node object for admission.
func (o objects) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	obj, err := o.get(ctx, "nodes", "", name)
	if err != nil {
		return nil, err
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil, fmt.Errorf("node %s: stored as %T", name, obj)
	}
	return n, nil
}
