package config

import (
	"reflect"
	"strings"
)

// Diff returns the keys (server.allowed_origins, limits.per_user, ...)
// whose values differ between a and b, in struct order. Lists and maps
// compare as a whole.
func Diff(a, b Config) []string {
	var out []string
	var walk func(x, y reflect.Value, prefix string)
	walk = func(x, y reflect.Value, prefix string) {
		t := x.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fx, fy := x.Field(i), y.Field(i)
			if f.Type.Kind() == reflect.Struct {
				walk(fx, fy, prefix+name+".")
				continue
			}
			if !reflect.DeepEqual(fx.Interface(), fy.Interface()) {
				out = append(out, prefix+name)
			}
		}
	}
	walk(reflect.ValueOf(a), reflect.ValueOf(b), "")
	return out
}

// CopyKey sets key (as named by Diff) in dst to its value in src; it
// reports whether the key exists.
func CopyKey(dst *Config, src Config, key string) bool {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for _, part := range strings.Split(key, ".") {
		found := false
		for i := range d.Type().NumField() {
			name, _, _ := strings.Cut(d.Type().Field(i).Tag.Get("koanf"), ",")
			if name == part && d.Type().Field(i).IsExported() {
				d, s, found = d.Field(i), s.Field(i), true
				break
			}
		}
		if !found {
			return false
		}
	}
	d.Set(s)
	return true
}
