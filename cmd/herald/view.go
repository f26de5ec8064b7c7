package main

import (
	"reflect"
	"time"

	"github.com/heraldrt/herald/config"
)

// configView turns the config into a map keyed by the koanf tags, with
// durations as strings, so `herald config` prints keys as they are written
// in YAML and environment variables.
func configView(cfg config.Config) map[string]any { return viewOf(reflect.ValueOf(cfg)) }

func viewOf(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Type() == reflect.TypeOf(time.Duration(0)):
			out[tag] = time.Duration(fv.Int()).String()
		case fv.Kind() == reflect.Struct:
			out[tag] = viewOf(fv)
		default:
			out[tag] = fv.Interface()
		}
	}
	return out
}
