package edge

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

func historyPage(t *testing.T, ts *testServer, path, apiKey string) (int, []string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+ts.addr+path, nil)
	if apiKey != "" {
		req.Header.Set("X-API-Key", apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Messages []struct {
			Channel string
			Data    map[string]any
		}
		Next string
	}
	_ = jsonDecode(resp, &out)
	var got []string
	for _, m := range out.Messages {
		got = append(got, fmt.Sprint(m.Channel, "=", m.Data["n"]))
	}
	return resp.StatusCode, got, out.Next
}

// TestHistoryAPIPaging: newest first across the user's channels, paged by
// cursor, on both brokers; retention bounds what is returned.
func TestHistoryAPIPaging(t *testing.T) {
	for _, broker := range []string{"memory", "redis"} {
		t.Run(broker, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) {
				c.History.Size = 4
				if broker == "redis" {
					c.Fanout.Broker = "redis"
					c.Fanout.Redis.Shards = []string{redistest.Start(t).Addr()}
				}
			})
			for i := 1; i <= 6; i++ {
				ts.publishTo(t, "h", fmt.Sprintf(`{"n":%d}`, i))
				if i%2 == 0 {
					ts.publish(t, fmt.Sprintf(`{"channel":"broadcast","data":{"n":"b%d"}}`, i))
				}
				ts.publishTo(t, "other", `{"n":"x"}`)
			}
			// Retained: user:h 3..6 (history.size 4, MAXLEN ~ may keep a
			// little more on Redis), broadcast b2 b4 b6.
			code, page1, next := historyPage(t, ts, "/api/history?user_id=h&limit=3", testAPIKey)
			if code != 200 || fmt.Sprint(page1) != "[broadcast=b6 user:h=6 user:h=5]" || next == "" {
				t.Fatalf("page 1: %d %v next %q", code, page1, next)
			}
			_, page2, next := historyPage(t, ts, "/api/history?user_id=h&limit=3&before="+next, testAPIKey)
			if fmt.Sprint(page2) != "[broadcast=b4 user:h=4 user:h=3]" {
				t.Fatalf("page 2: %v", page2)
			}
			// Only the user's own token reads /api/me/history.
			_, mine, _ := historyPage(t, ts, "/api/me/history?limit=2&token="+token(t, "h", time.Hour), "")
			if fmt.Sprint(mine) != "[broadcast=b6 user:h=6]" {
				t.Fatalf("me: %v", mine)
			}
			if code, _, _ := historyPage(t, ts, "/api/me/history", ""); code != 401 {
				t.Fatalf("me without token: %d", code)
			}
			if code, _, _ := historyPage(t, ts, "/api/history?user_id=h", ""); code != 401 {
				t.Fatalf("history without key: %d", code)
			}
			if code, _, _ := historyPage(t, ts, "/api/history?user_id=h&before=!!", testAPIKey); code != 400 {
				t.Fatalf("bad cursor: %d", code)
			}
		})
	}
}

// TestRetentionRules: history.retention gives channels matching a pattern
// their own size and TTL.
func TestRetentionRules(t *testing.T) {
	for _, broker := range []string{"memory", "redis"} {
		t.Run(broker, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) {
				c.History.Retention = []string{"user:short*=/300ms", "broadcast=2/"}
				if broker == "redis" {
					c.Fanout.Broker = "redis"
					c.Fanout.Redis.Shards = []string{redistest.Start(t).Addr()}
				}
			})
			for i := 1; i <= 4; i++ {
				ts.publishTo(t, "shortlived", fmt.Sprintf(`{"n":%d}`, i))
				ts.publishTo(t, "kept", fmt.Sprintf(`{"n":%d}`, i))
			}
			time.Sleep(400 * time.Millisecond)
			if _, got, _ := historyPage(t, ts, "/api/history?user_id=shortlived", testAPIKey); len(got) != 0 {
				t.Fatalf("user:shortlived kept %v past its 300ms TTL", got)
			}
			if _, got, _ := historyPage(t, ts, "/api/history?user_id=kept", testAPIKey); len(got) != 4 {
				t.Fatalf("user:kept (default retention) has %v", got)
			}
			if broker == "memory" { // Redis trims with MAXLEN ~ (approximate)
				for i := 1; i <= 4; i++ {
					ts.publish(t, fmt.Sprintf(`{"channel":"broadcast","data":{"n":"b%d"}}`, i))
				}
				if _, got, _ := historyPage(t, ts, "/api/history?user_id=nobody", testAPIKey); fmt.Sprint(got) != "[broadcast=b4 broadcast=b3]" {
					t.Fatalf("broadcast size rule: %v", got)
				}
			}
		})
	}
}
