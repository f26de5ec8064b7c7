package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

const testAdminKey = "e2e-admin-key-0123456789"

// notificationSpy replaces the Notification API in every document: each
// notification is appended to a list in localStorage, shared by the tabs of
// the origin, so notifications from a tab that is later closed still count.
const notificationSpy = `(() => {
  const rec = (title, o) => {
    const k = "herald-e2e-notes";
    const l = JSON.parse(localStorage.getItem(k) || "[]");
    l.push({ title, tag: (o && o.tag) || "", at: Date.now() });
    localStorage.setItem(k, JSON.stringify(l));
  };
  class SpyNotification {
    static permission = "granted";
    static requestPermission() { return Promise.resolve("granted"); }
    constructor(title, o) { rec(title, o); }
  }
  Object.defineProperty(window, "Notification", { value: SpyNotification, configurable: true, writable: true });
})()`

// txJS lists the workflow messages one tab received for a transaction.
func txJS(tx int) string {
	return fmt.Sprintf(`window.heraldDemo.received.filter(m => m && m.transaction_id === %d && typeof m.type === "string" && m.type.startsWith("oracle_upload_"))
		.map(m => m.type === "oracle_upload_progress" ? "step" + m.step_number : m.type.slice(14))`, tx)
}

// startUpload asks the demo publisher for a workflow and returns its
// transaction id.
func startUpload(t *testing.T, base, user string, fail bool, stepMS int) int {
	t.Helper()
	u := fmt.Sprintf("%s/dev/demo/upload?user=%s&step_ms=%d", base, user, stepMS)
	if fail {
		u += "&fail=1"
	}
	resp, err := http.Post(u, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		TX int `json:"transaction_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d %v", resp.StatusCode, err)
	}
	return r.TX
}

// serverConns returns the connections Herald holds for user (admin API).
func serverConns(t *testing.T, base, user string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/connections?user_id="+user, nil)
	req.Header.Set("X-Admin-Key", testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Connections []json.RawMessage `json:"connections"`
	}
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin connections: %d %s", resp.StatusCode, b)
	}
	return len(r.Connections)
}

// waitConns waits until Herald holds want connections for user.
func waitConns(t *testing.T, base, user string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := serverConns(t, base, user)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Herald holds %d connections for user %s, want %d", got, user, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSharedTabs: three tabs of one origin hold exactly one server
// connection; all three receive two workflows (one completes, one fails)
// once each and in order; closing the leader tab mid-workflow hands the
// connection to another tab within 2 s, and the remaining tabs finish with
// nothing lost or duplicated; each completed/failed event shows exactly one
// OS notification for the whole browser. TestSharedTabsLeaderCrash does
// the same with the leader's renderer crashing (no goodbye).
func TestSharedTabs(t *testing.T) { testSharedTabs(t, false) }

// TestSharedTabsLeaderCrash: as TestSharedTabs, but the leader tab's
// renderer crashes (Page.crash) instead of closing.
func TestSharedTabsLeaderCrash(t *testing.T) { testSharedTabs(t, true) }

func testSharedTabs(t *testing.T, crash bool) {
	n := startHerald(t, func(c *config.Config) { c.Admin.Key = testAdminKey }, nil)
	base := "http://" + n.Addr
	b := startBrowser(t)
	tabs := make([]*page, 3)
	for i := range tabs {
		tabs[i] = b.newPage()
		tabs[i].addInitScript(notificationSpy)
		tabs[i].addInitScript(`window.heraldE2E = {};`)
		tabs[i].navigate(base + "/?notify_always=1")
	}
	for _, p := range tabs {
		p.waitFor(`window.heraldDemo.client && window.heraldDemo.client.state === "open" && window.heraldDemo.client.transport === "websocket"`, 20*time.Second)
		// Record when this tab becomes a connected leader (for the failover time).
		p.mustEval(`(() => { const c = window.heraldDemo.client;
			c.lifecycle.on("role", (r) => { if (r === "leader") window.heraldE2E.roleAt = Date.now(); });
			c.lifecycle.on("connected", () => { if (c.role === "leader") window.heraldE2E.ledAt = Date.now(); }); })()`, nil)
	}
	roles := make([]string, len(tabs))
	leader := -1
	for i, p := range tabs {
		p.mustEval(`window.heraldDemo.client.role`, &roles[i])
		if roles[i] == "leader" {
			leader = i
		}
	}
	if strings.Count(strings.Join(roles, ","), "leader") != 1 || strings.Count(strings.Join(roles, ","), "follower") != 2 {
		t.Fatalf("tab roles %v, want one leader and two followers", roles)
	}
	waitConns(t, base, "42", 1)
	for _, p := range tabs {
		p.waitFor(`document.getElementById("tabs").textContent.startsWith("tab: ")`, 5*time.Second)
	}

	ok := startUpload(t, base, "42", false, 700)
	bad := startUpload(t, base, "42", true, 900)
	for _, p := range tabs {
		p.waitFor(`(`+txJS(ok)+`).includes("step2")`, 20*time.Second)
	}
	if got := serverConns(t, base, "42"); got != 1 {
		t.Fatalf("mid-workflow: %d server connections for 3 tabs, want 1", got)
	}
	closedAt := time.Now().UnixMilli()
	if crash {
		// The renderer dies without pagehide or a reply to this command.
		go func() { _ = tabs[leader].b.call(tabs[leader].session, "Page.crash", nil, nil) }()
	} else {
		tabs[leader].close()
	}
	rest := append(append([]*page{}, tabs[:leader]...), tabs[leader+1:]...)

	wantBad := []string{"started", "step1", "step2", "failed"}
	for _, p := range rest {
		p.waitFor(`(`+txJS(ok)+`).includes("completed") && (`+txJS(bad)+`).includes("failed")`, 30*time.Second)
	}
	time.Sleep(400 * time.Millisecond) // a duplicate would arrive now
	var ledAt int64
	newLeaders := 0
	for i, p := range rest {
		var got struct {
			OK, Bad []string
			Role    string
			LedAt   int64
			RoleAt  int64
		}
		p.mustEval(`({ok: `+txJS(ok)+`, bad: `+txJS(bad)+`, role: window.heraldDemo.client.role, ledAt: window.heraldE2E.ledAt || 0, roleAt: window.heraldE2E.roleAt || 0})`, &got)
		if !reflect.DeepEqual(got.OK, wantWorkflow) || !reflect.DeepEqual(got.Bad, wantBad) {
			t.Errorf("tab %d got %v and %v, want each message once in order: %v and %v", i, got.OK, got.Bad, wantWorkflow, wantBad)
		}
		if got.Role == "leader" {
			newLeaders++
			ledAt = got.LedAt
			t.Logf("new leader: lock after %dms, connected after %dms", got.RoleAt-closedAt, got.LedAt-closedAt)
		}
	}
	if newLeaders != 1 {
		t.Fatalf("%d leaders among the remaining tabs, want 1", newLeaders)
	}
	failover := time.Duration(ledAt-closedAt) * time.Millisecond
	if ledAt == 0 || failover > 2*time.Second {
		t.Fatalf("the new leader connected %v after the old one closed, want within 2s", failover)
	}
	waitConns(t, base, "42", 1)

	var notes []struct{ Title, Tag string }
	rest[0].mustEval(`JSON.parse(localStorage.getItem("herald-e2e-notes") || "[]")`, &notes)
	count := map[string]int{}
	for _, n := range notes {
		count[n.Tag]++
	}
	want := map[string]int{fmt.Sprintf("oracle_upload_completed:%d", ok): 1, fmt.Sprintf("oracle_upload_failed:%d", bad): 1}
	if !reflect.DeepEqual(count, want) {
		t.Fatalf("OS notifications %v, want one per event: %v", count, want)
	}
	how := map[bool]string{false: "closed", true: "crashed"}[crash]
	t.Logf("3 tabs, 1 connection; leader tab %d %s, tab took over and connected in %v; notifications %v", leader, how, failover, count)
}

// TestDemoScreenshots: the demo page at 1280 px (dark) and 390 px (light)
// wide, after one completed and one failed upload: every control and card
// is visible inside the viewport, nothing overflows sideways, the transport
// pill keeps its size when its text changes, and the colour scheme follows
// prefers-color-scheme. The PNGs are kept in $HERALD_ARTIFACTS.
func TestDemoScreenshots(t *testing.T) {
	n := startHerald(t, nil, nil)
	base := "http://" + n.Addr
	b := startBrowser(t)
	for i, v := range []struct {
		width, height int
		scheme        string
		bg            string
	}{
		{1280, 900, "dark", "rgb(11, 17, 32)"},
		{390, 844, "light", "rgb(244, 246, 251)"},
	} {
		name := fmt.Sprintf("demo-%d-%s.png", v.width, v.scheme)
		user := fmt.Sprint(500 + i)
		p := b.newPage()
		p.viewport(v.width, v.height, v.width < 500)
		p.colorScheme(v.scheme)
		p.navigate(base + "/?user=" + user)
		p.waitFor(`window.heraldDemo.client && window.heraldDemo.client.transport === "websocket"`, 20*time.Second)
		okTx := startUpload(t, base, user, false, 150)
		badTx := startUpload(t, base, user, true, 150)
		p.waitFor(fmt.Sprintf(`document.querySelector('.tx.completed[data-tx="%d"]') && document.querySelector('.tx.failed[data-tx="%d"]')`, okTx, badTx), 20*time.Second)
		time.Sleep(500 * time.Millisecond) // progress bar transitions
		var got struct {
			Overflow  []string
			Hidden    []string
			BG        string
			Pill      string
			Tabs      string
			Toasts    int
			PillSame  bool
			FailNote  string
			Active    int
			LogLabels int
		}
		p.mustEval(`(() => {
  const vw = document.documentElement.clientWidth;
  const overflow = [];
  if (document.documentElement.scrollWidth > vw) overflow.push("document " + document.documentElement.scrollWidth + " > " + vw);
  for (const el of document.querySelectorAll("main *")) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > vw + 0.5 || r.left < -0.5) && !el.closest("#log")) overflow.push(el.tagName + "." + el.className + " " + Math.round(r.left) + ".." + Math.round(r.right));
  }
  const hidden = [];
  for (const sel of ["h1", "#transport", "#tabs", "#user", "#connect", "#disconnect", "#forceSSE", "#notifications", "#start", "#startFail",
                     "#uploads .tx.completed", "#uploads .tx.failed", ".tx.failed .note", "#log", "#log li .kind", "#log li .what"]) {
    const el = document.querySelector(sel);
    const r = el && el.getBoundingClientRect();
    const cs = el && getComputedStyle(el);
    if (!el || !r.width || !r.height || r.left < 0 || r.right > vw + 0.5 || cs.visibility !== "visible" || cs.display === "none" || Number(cs.opacity) === 0) hidden.push(sel);
  }
  const pill = document.getElementById("transport");
  const before = pill.getBoundingClientRect(), tabsBefore = document.getElementById("tabs").getBoundingClientRect();
  const text = pill.textContent;
  pill.textContent = "reconnecting…";
  const after = pill.getBoundingClientRect(), tabsAfter = document.getElementById("tabs").getBoundingClientRect();
  pill.textContent = text;
  return {
    overflow, hidden,
    bg: getComputedStyle(document.body).backgroundColor,
    pill: text, tabs: document.getElementById("tabs").textContent,
    toasts: document.querySelectorAll("#toasts .toast").length,
    pillSame: before.width === after.width && before.height === after.height && tabsBefore.left === tabsAfter.left && tabsBefore.top === tabsAfter.top,
    failNote: document.querySelector(".tx.failed .note").textContent,
    active: document.querySelectorAll(".step.active").length,
    logLabels: document.querySelectorAll("#log li .kind").length,
  };
})()`, &got)
		if v.width < 500 { // toasts are fixed to the viewport: dismiss them so the full-page shot shows the cards
			p.mustEval(`document.querySelectorAll("#toasts .toast").forEach((t) => t.click()); document.querySelectorAll("#toasts .toast").length === 0`, nil)
		}
		p.screenshot(name)
		if len(got.Overflow) > 0 {
			t.Errorf("%s: horizontal overflow: %v", name, got.Overflow)
		}
		if len(got.Hidden) > 0 {
			t.Errorf("%s: not visible inside the viewport: %v", name, got.Hidden)
		}
		if got.BG != v.bg {
			t.Errorf("%s: body background %s, want %s for prefers-color-scheme: %s", name, got.BG, v.bg, v.scheme)
		}
		if got.Pill != "WebSocket" || got.Tabs != "tab: leader" || !got.PillSame {
			t.Errorf("%s: pills %q / %q, size kept when the text changes: %v", name, got.Pill, got.Tabs, got.PillSame)
		}
		if got.Toasts < 1 || got.Toasts > 3 {
			t.Errorf("%s: %d toasts, want 1..3", name, got.Toasts)
		}
		if !strings.Contains(got.FailNote, "Interface loader timeout") || got.Active != 0 || got.LogLabels < 10 {
			t.Errorf("%s: failed note %q, %d steps still in progress, %d log lines", name, got.FailNote, got.Active, got.LogLabels)
		}
	}
}
