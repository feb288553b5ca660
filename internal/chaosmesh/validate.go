package chaosmesh

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/chaos-mesh/chaos-mesh/api/genericwebhook"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InvalidError is an object Chaos Mesh's validation rejects. Each error's
// Field is the JSON path of the field at fault (spec.delay.latency).
type InvalidError struct {
	Kind, Name string
	Errs       field.ErrorList
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		msgs[i] = fe.Error()
	}
	return fmt.Sprintf("%s %s is invalid: %s", e.Kind, e.Name, strings.Join(msgs, "; "))
}

// defaulter is Chaos Mesh's admission defaulting, which every chaos kind
// has (webhook.CustomDefaulter).
type defaulter interface {
	Default(ctx context.Context, obj runtime.Object) error
}

// Validate runs the admission code Chaos Mesh's webhook runs on obj: its
// defaulting (filling in obj: selector namespaces, jitter, correlation,
// direction, ...), then its validation, the same field validators
// obj.Validate aggregates, plus Kubernetes' own checks of the object's
// metadata (name, namespace, labels, annotations). It does not check the
// CRD's OpenAPI schema, which only an API server holds.
func Validate(obj client.Object) error {
	d, ok := obj.(defaulter)
	if !ok {
		return fmt.Errorf("%T is not a Chaos Mesh kind", obj)
	}
	if err := d.Default(context.Background(), obj); err != nil {
		return fmt.Errorf("%s %s: defaulting: %w", kindOf(obj), obj.GetName(), err)
	}
	errs := apivalidation.ValidateObjectMetaAccessor(obj, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	for _, fe := range genericwebhook.Validate(obj) {
		fe.Field = jsonPath(reflect.TypeOf(obj), fe.Field)
		errs = append(errs, fe)
	}
	if len(errs) > 0 {
		return &InvalidError{Kind: kindOf(obj), Name: obj.GetName(), Errs: errs}
	}
	return nil
}

func kindOf(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return reflect.Indirect(reflect.ValueOf(obj)).Type().Name()
}

// jsonPath turns the Go field path Chaos Mesh's validators report
// (Spec.TcParameter.Delay.Latency) into the object's JSON path
// (spec.delay.latency): each field by its json name, inlined structs
// dropped, indexes and keys kept.
func jsonPath(t reflect.Type, goPath string) string {
	var out strings.Builder
	for rest := goPath; rest != ""; {
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				out.WriteString(rest)
				break
			}
			out.WriteString(rest[:end+1])
			rest = strings.TrimPrefix(rest[end+1:], ".")
			if t != nil {
				t = deref(t)
				if k := t.Kind(); k == reflect.Slice || k == reflect.Array || k == reflect.Map {
					t = t.Elem()
				}
			}
			continue
		}
		end := strings.IndexAny(rest, ".[")
		if end < 0 {
			end = len(rest)
		}
		name := rest[:end]
		rest = strings.TrimPrefix(rest[end:], ".")
		json, inline := name, false
		if t != nil {
			t = deref(t)
			f, ok := t.FieldByName(name)
			if t.Kind() == reflect.Struct && ok {
				tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				switch {
				case strings.Contains(","+opts+",", ",inline,") || (tag == "" && f.Anonymous):
					inline = true
				case tag != "" && tag != "-":
					json = tag
				}
				t = f.Type
			} else {
				t = nil // not a field we know: keep the rest as it is
			}
		}
		if inline {
			continue
		}
		if out.Len() > 0 {
			out.WriteByte('.')
		}
		out.WriteString(json)
	}
	return out.String()
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
