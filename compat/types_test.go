package compat

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestSetTypesLive changes compat.channels_redis.types on a running ingest
// (what a config reload does): with ["chat_message"] the guide's
// send_notification events are skipped; after SetTypes(["send_notification"])
// they are ingested.
func TestSetTypesLive(t *testing.T) {
	py := pythonWith(t, "channels_redis", "asgiref", "msgpack")
	host := redistest.Start(t)
	col := newCollector(t, "user:42")
	cfg := testConfig("core", host)
	cfg.Types = []string{"chat_message"}
	in := startIngest(t, cfg, col.broker)
	in.Interest("user:42")
	syncIngest(t, in)

	sent := groupSend(t, py, "core", []*redistest.Server{host}, "user_42", 11)
	deadline := time.Now().Add(10 * time.Second)
	for in.Stats().Skipped < uint64(len(sent)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := in.Stats(); st.Skipped != uint64(len(sent)) || col.count("user:42") != 0 {
		t.Fatalf("with types [chat_message]: %d ingested, stats %+v, want all %d skipped", col.count("user:42"), st, len(sent))
	}

	in.SetTypes([]string{"send_notification"})
	sent = groupSend(t, py, "core", []*redistest.Server{host}, "user_42", 12)
	checkSequence(t, col.wait(t, "user:42", len(sent), 10*time.Second), sent)
}
