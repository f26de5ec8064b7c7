package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldrt/herald/config"
)

func TestDemoWorkflow(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Dev.Enabled = true })
	resp, err := http.Get("http://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Herald live demo") {
		t.Fatalf("demo page: %d", resp.StatusCode)
	}
	resp, err = http.Post("http://"+ts.addr+"/dev/token?user=77", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	c := ts.mustWS(t, q("token", tok.Token))
	readWS(t, c)
	for _, fail := range []bool{false, true} {
		url := "http://" + ts.addr + "/dev/demo/upload?user=77&step_ms=5"
		if fail {
			url += "&fail=1"
		}
		if resp, err := http.Post(url, "", nil); err != nil || resp.StatusCode != 202 {
			t.Fatalf("start upload: %v %v", err, resp)
		}
		var types []string
		for {
			m := readWSJSON(t, c)
			types = append(types, m["type"].(string))
			if m["type"] == "oracle_upload_completed" || m["type"] == "oracle_upload_failed" {
				break
			}
		}
		want := "[oracle_upload_started oracle_upload_progress oracle_upload_progress oracle_upload_progress oracle_upload_progress oracle_upload_progress oracle_upload_completed]"
		if fail {
			want = "[oracle_upload_started oracle_upload_progress oracle_upload_progress oracle_upload_failed]"
		}
		if got := "[" + strings.Join(types, " ") + "]"; got != want {
			t.Fatalf("fail=%v: got %v", fail, types)
		}
	}
}

func TestDevEndpointsNeedDevMode(t *testing.T) {
	ts := startServer(t, nil)
	for _, p := range []string{"/", "/dev/token"} {
		resp, err := http.Post("http://"+ts.addr+p, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s without dev mode: %d", p, resp.StatusCode)
		}
	}
}
