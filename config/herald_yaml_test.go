package config

import (
	"fmt"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// TestHeraldYAMLMatchesDefaults keeps configs/herald.yaml, the documented
// reference of every key, in step with Default(): the file names every key
// the defaults have (strict loading already refuses keys they lack), and
// loading it changes no value.
func TestHeraldYAMLMatchesDefaults(t *testing.T) {
	const path = "../configs/herald.yaml"
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	dk := koanf.New(".")
	if err := dk.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range dk.Keys() {
		if !fk.Exists(key) {
			t.Errorf("%s does not document %s", path, key)
		}
	}

	fs := Flags()
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// %+v prints a nil and an empty list alike ([]), which is the
	// distinction the file cannot make and Herald does not either.
	gk, wk := koanf.New("."), koanf.New(".")
	if err := gk.Load(structs.Provider(got, "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	if err := wk.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range wk.Keys() {
		if g, w := fmt.Sprintf("%+v", gk.Get(key)), fmt.Sprintf("%+v", wk.Get(key)); g != w {
			t.Errorf("%s sets %s to %s; the default is %s", path, key, g, w)
		}
	}
}
