package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

// maxDataBytes is the API server's limit on a ConfigMap's or Secret's data.
const maxDataBytes = 1 << 20

type configMapStrategy struct{}

func (configMapStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {}

func (configMapStrategy) validate(obj store.Object) field.ErrorList {
	cm := obj.(*corev1.ConfigMap)
	var errs field.ErrorList
	total := 0
	for k, v := range cm.Data {
		errs = append(errs, validateDataKey(k, field.NewPath("data").Key(k))...)
		total += len(v)
	}
	for k, v := range cm.BinaryData {
		errs = append(errs, validateDataKey(k, field.NewPath("binaryData").Key(k))...)
		if _, dup := cm.Data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
		total += len(v)
	}
	if total > maxDataBytes {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxDataBytes))
	}
	return errs
}

func validateDataKey(k string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(k) {
		errs = append(errs, field.Invalid(p, k, msg))
	}
	return errs
}

func (configMapStrategy) prepareForUpdate(obj, old store.Object) {}

func (configMapStrategy) validateUpdate(obj, old store.Object) field.ErrorList {
	cm, oldCM := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
	return validateImmutableData(oldCM.Immutable, cm.Immutable,
		!apiequality.Semantic.DeepEqual(cm.Data, oldCM.Data), !apiequality.Semantic.DeepEqual(cm.BinaryData, oldCM.BinaryData), "binaryData")
}

// validateImmutableData: once `immutable` is true, it and the data stay.
func validateImmutableData(oldImmutable, newImmutable *bool, dataChanged, otherChanged bool, other string) field.ErrorList {
	if oldImmutable == nil || !*oldImmutable {
		return nil
	}
	var errs field.ErrorList
	if newImmutable == nil || !*newImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if dataChanged {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	if otherChanged {
		errs = append(errs, field.Forbidden(field.NewPath(other), "field is immutable when `immutable` is set"))
	}
	return errs
}

type secretStrategy struct{}

// mergeStringData is what the v1 conversion does: stringData is write-only
// and overrides data.
func mergeStringData(s *corev1.Secret) {
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func (secretStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {
	s := obj.(*corev1.Secret)
	mergeStringData(s)
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
}

func (secretStrategy) validate(obj store.Object) field.ErrorList {
	s := obj.(*corev1.Secret)
	var errs field.ErrorList
	total := 0
	for k, v := range s.Data {
		errs = append(errs, validateDataKey(k, field.NewPath("data").Key(k))...)
		total += len(v)
	}
	if total > maxDataBytes {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxDataBytes))
	}
	required := map[corev1.SecretType][]string{
		corev1.SecretTypeDockercfg:        {corev1.DockerConfigKey},
		corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
		corev1.SecretTypeTLS:              {corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
	}
	for _, k := range required[s.Type] {
		if _, ok := s.Data[k]; !ok {
			errs = append(errs, field.Required(field.NewPath("data").Key(k), ""))
		}
	}
	return errs
}

func (secretStrategy) prepareForUpdate(obj, old store.Object) {
	s := obj.(*corev1.Secret)
	mergeStringData(s)
	if s.Type == "" {
		s.Type = old.(*corev1.Secret).Type
	}
}

func (secretStrategy) validateUpdate(obj, old store.Object) field.ErrorList {
	s, oldS := obj.(*corev1.Secret), old.(*corev1.Secret)
	var errs field.ErrorList
	if s.Type != oldS.Type {
		errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
	}
	return append(errs, validateImmutableData(oldS.Immutable, s.Immutable, !apiequality.Semantic.DeepEqual(s.Data, oldS.Data), false, "")...)
}

func secretFields(o store.Object) fields.Set {
	return fields.Set{"type": string(o.(*corev1.Secret).Type)}
}

type serviceAccountStrategy struct{}

func (serviceAccountStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {}
func (serviceAccountStrategy) validate(obj store.Object) field.ErrorList                           { return nil }
func (serviceAccountStrategy) prepareForUpdate(obj, old store.Object)                              {}
func (serviceAccountStrategy) validateUpdate(obj, old store.Object) field.ErrorList                { return nil }

// ensureDefaultServiceAccount is the service account controller: every
// namespace has a "default" service account.
func (r *Registry) ensureDefaultServiceAccount(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{}
	sa.Name, sa.Namespace = "default", ns
	_, err := r.Create(ctx, r.resources["serviceaccounts"], ns, sa, nil)
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create the default service account in %s: %w", ns, err)
	}
	return nil
}
