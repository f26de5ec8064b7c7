package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
)

// The demo page keeps everything it received in window.heraldDemo.received.
const (
	// workflowJS lists the workflow messages received: started, step1…step5,
	// completed (or failed).
	workflowJS = `window.heraldDemo.received.filter(m => m && typeof m.type === "string" && m.type.startsWith("oracle_upload_"))
		.map(m => m.type === "oracle_upload_progress" ? "step" + m.step_number : m.type.slice(14))`
	transportJS = `(window.heraldDemo.client && window.heraldDemo.client.transport)`
)

var wantWorkflow = []string{"started", "step1", "step2", "step3", "step4", "step5", "completed"}

// openDemo loads the demo page from base with query; it signs in as user
// 42 and connects on load.
func openDemo(t *testing.T, b *browser, base, query string) *page {
	t.Helper()
	p := b.newPage()
	p.navigate(base + "/?" + query)
	p.waitFor(`window.heraldDemo && window.heraldDemo.client`, 10*time.Second)
	return p
}

// waitTransport waits until the client is connected over want.
func waitTransport(t *testing.T, p *page, want string) {
	t.Helper()
	p.waitFor(fmt.Sprintf(`%s === %q`, transportJS, want), 30*time.Second)
}

// checkWorkflow waits for the workflow to complete and checks that every
// message arrived exactly once, in order.
func checkWorkflow(t *testing.T, p *page) {
	t.Helper()
	p.waitFor(`(`+workflowJS+`).includes("completed")`, 60*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	var got []string
	p.mustEval(workflowJS, &got)
	if !reflect.DeepEqual(got, wantWorkflow) {
		t.Fatalf("workflow messages = %v, want each once in order: %v", got, wantWorkflow)
	}
}

// TestDemoPageWebSocket: the demo page signs in, receives the guide's
// workflow (started, five steps, completed) over WebSocket through
// herald.js, and renders it; a screenshot is saved.
func TestDemoPageWebSocket(t *testing.T) {
	n := startHerald(t, nil, nil)
	g := startGate(t, n.Addr)
	b := startBrowser(t)
	p := openDemo(t, b, g.url, "step_ms=250")
	waitTransport(t, p, "websocket")
	p.waitFor(`document.getElementById("transport").textContent === "WebSocket"`, 5*time.Second)

	p.mustEval(`document.getElementById("start").click()`, nil)
	checkWorkflow(t, p)
	var ui struct {
		Done     int    `json:"done"`
		Width    string `json:"width"`
		Tx       string `json:"tx"`
		Sessions []any  `json:"transports"`
	}
	p.waitFor(`document.querySelectorAll(".tx.completed .step.done").length === 5`, 5*time.Second)
	p.mustEval(`({done: document.querySelectorAll(".tx.completed .step.done").length,
		width: document.querySelector(".tx.completed .bar > div").style.width,
		tx: document.querySelector(".tx.completed .tx-title").textContent,
		transports: window.heraldDemo.transports})`, &ui)
	if ui.Width != "100%" || !strings.HasPrefix(ui.Tx, "Transaction ") || len(ui.Sessions) != 1 {
		t.Fatalf("page state %+v", ui)
	}
	if g.upgrades.Load() == 0 {
		t.Fatal("no WebSocket upgrade went through the proxy")
	}
	// One event reported for several channels (as stream_reset is after a
	// restart): one toast, counted, not a stack.
	for range 3 {
		publish(t, nil, "http://"+n.Addr, "42", `{"type":"stream_reset","reason":"epoch_changed","channel":"user:42"}`)
	}
	p.waitFor(`document.querySelectorAll('#toasts .toast[data-kind="reset"]').length === 1 &&
		document.querySelector('#toasts .toast[data-kind="reset"]').textContent.endsWith("×3")`, 10*time.Second)
	var toasts int
	p.mustEval(`document.querySelectorAll("#toasts .toast").length`, &toasts)
	if toasts > 3 {
		t.Fatalf("%d toasts on screen, the limit is 3", toasts)
	}
	time.Sleep(500 * time.Millisecond) // let the progress bar's transition finish
	p.screenshot("demo-page.png")
}

// TestDemoForceSSE: the page's "force SSE" switch moves the live
// connection to SSE (resuming from its cursor) and the workflow arrives
// over the event stream.
func TestDemoForceSSE(t *testing.T) {
	n := startHerald(t, nil, nil)
	g := startGate(t, n.Addr)
	b := startBrowser(t)
	p := openDemo(t, b, g.url, "step_ms=250")
	waitTransport(t, p, "websocket")
	p.mustEval(`document.getElementById("forceSSE").click()`, nil) // checks it and fires change
	waitTransport(t, p, "sse")
	p.waitFor(`document.getElementById("transport").textContent === "SSE"`, 5*time.Second)
	upgrades := g.upgrades.Load()
	p.mustEval(`document.getElementById("start").click()`, nil)
	checkWorkflow(t, p)
	if g.upgrades.Load() != upgrades {
		t.Fatal("forced SSE still opened WebSockets")
	}
}

// TestDemoFallbackAndBack: with WebSocket refused by a proxy the page falls
// back to SSE; when WebSocket is allowed again it moves back; when the
// proxy cuts WebSockets mid-stream it falls back again — and across all
// these switches a steady stream of numbered messages and the demo workflow
// arrive exactly once, in order.
func TestDemoFallbackAndBack(t *testing.T) {
	n := startHerald(t, nil, nil)
	g := startGate(t, n.Addr)
	g.block(true)
	b := startBrowser(t)
	p := openDemo(t, b, g.url, "probe_ms=500&ws_timeout_ms=8000&step_ms=900")
	waitTransport(t, p, "sse")
	if g.refused.Load() == 0 {
		t.Fatal("the page never tried WebSocket")
	}

	// A backend publishing numbered messages every 60 ms throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ; ; sent++ {
			select {
			case <-stop:
				return
			case <-time.After(60 * time.Millisecond):
			}
			publish(t, nil, "http://"+n.Addr, "42", fmt.Sprintf(`{"type":"tick","n":%d}`, sent))
		}
	}()
	p.mustEval(`document.getElementById("start").click()`, nil)

	time.Sleep(1200 * time.Millisecond)
	g.block(false) // WebSocket works again: the SSE page probes and moves back
	waitTransport(t, p, "websocket")
	time.Sleep(1200 * time.Millisecond)
	g.block(true) // cut and refuse WebSocket: back to SSE
	waitTransport(t, p, "sse")
	time.Sleep(1200 * time.Millisecond)
	g.block(false)
	waitTransport(t, p, "websocket")
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	checkWorkflow(t, p)
	p.waitFor(fmt.Sprintf(`window.heraldDemo.received.some(m => m.type === "tick" && m.n === %d)`, sent-1), 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	var ticks []int
	p.mustEval(`window.heraldDemo.received.filter(m => m.type === "tick").map(m => m.n)`, &ticks)
	if len(ticks) != sent {
		t.Errorf("received %d ticks, published %d", len(ticks), sent)
	}
	for i, v := range ticks {
		if v != i {
			t.Fatalf("tick %d is %d: lost, duplicated or reordered (%v)", i, v, ticks)
		}
	}
	var transports []string
	p.mustEval(`window.heraldDemo.transports`, &transports)
	if want := []string{"sse", "websocket", "sse", "websocket"}; !reflect.DeepEqual(transports, want) {
		t.Errorf("transports %v, want %v", transports, want)
	}
	t.Logf("%d ticks and the workflow across %v; %d upgrades refused, %d passed", sent, transports, g.refused.Load(), g.upgrades.Load())
}

// TestDemoResumesAcrossRestart: Herald on the Redis broker is stopped
// mid-workflow and a new node starts on the same port; steps published
// while the page had no connection are replayed from Redis, so the page
// shows every step exactly once.
func TestDemoResumesAcrossRestart(t *testing.T) {
	rs := redistest.Start(t)
	redisCfg := func(addr string) func(*config.Config) {
		return func(c *config.Config) {
			c.Server.Listen = addr
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{rs.Addr()}
			c.Fanout.Redis.Prefix = "e2e-restart:"
			c.Fanout.Redis.ProbeInterval = 500 * time.Millisecond
		}
	}
	n1 := startHerald(t, redisCfg("127.0.0.1:0"), nil)
	g := startGate(t, n1.Addr)
	b := startBrowser(t)
	p := openDemo(t, b, g.url, "probe_ms=500")
	waitTransport(t, p, "websocket")

	msgs := workflow(777)
	for _, m := range msgs[:3] { // started, step 1, step 2
		publish(t, nil, "http://"+n1.Addr, "42", m)
	}
	p.waitFor(`(`+workflowJS+`).includes("step2")`, 10*time.Second)

	n1.Stop(t)
	p.waitFor(transportJS+` === null`, 10*time.Second)
	g.hold.Store(true) // the page cannot reach the new node yet
	n2 := startHerald(t, redisCfg(n1.Addr), nil)
	for _, m := range msgs[3:5] { // steps 3 and 4, while the page is away
		publish(t, nil, "http://"+n2.Addr, "42", m)
	}
	g.hold.Store(false)
	p.waitFor(transportJS+` !== null`, 30*time.Second)
	p.waitFor(`(`+workflowJS+`).includes("step4")`, 10*time.Second)
	for _, m := range msgs[5:] { // step 5, completed
		publish(t, nil, "http://"+n2.Addr, "42", m)
	}
	checkWorkflow(t, p)
	var resets int
	p.mustEval(`window.heraldDemo.received.filter(m => m.type === "stream_reset").length`, &resets)
	if resets != 0 {
		t.Fatalf("%d stream_reset events; the Redis history should cover the restart", resets)
	}
}

// The guide's NotificationService class, verbatim except for the URL, which
// gains ?token= (Herald needs a token; the guide relied on a session).
const guideClass = `class NotificationService {
    constructor() {
        this.socket = null;
        this.callbacks = {};
    }

    connect() {
        this.socket = new WebSocket('ws://127.0.0.1:8000/ws/notifications/');

        this.socket.onopen = () => {
            console.log('WebSocket connected');
            this.trigger('connected');
        };

        this.socket.onmessage = (event) => {
            const data = JSON.parse(event.data);
            this.handleMessage(data);
        };

        this.socket.onclose = () => {
            console.log('WebSocket closed');
            this.trigger('disconnected');
            // Auto-reconnect after 5 seconds
            setTimeout(() => this.connect(), 5000);
        };
    }

    handleMessage(data) {
        switch(data.type) {
            case 'oracle_upload_started':
                this.trigger('uploadStarted', data);
                break;
            case 'oracle_upload_progress':
                this.trigger('uploadProgress', data);
                break;
            case 'oracle_upload_completed':
                this.trigger('uploadCompleted', data);
                break;
            case 'oracle_upload_failed':
                this.trigger('uploadFailed', data);
                break;
        }
    }

    on(event, callback) {
        if (!this.callbacks[event]) {
            this.callbacks[event] = [];
        }
        this.callbacks[event].push(callback);
    }

    trigger(event, data) {
        if (this.callbacks[event]) {
            this.callbacks[event].forEach(callback => callback(data));
        }
    }

    disconnect() {
        if (this.socket) {
            this.socket.close();
        }
    }
}`

// TestGuideSnippetsUnchanged: the guide's NotificationService class and the
// README's plain WebSocket and EventSource snippets run unchanged in a real
// browser (apart from ?token=) and receive the whole workflow.
func TestGuideSnippetsUnchanged(t *testing.T) {
	n := startHerald(t, nil, nil)
	b := startBrowser(t)
	p := b.newPage()
	p.navigate("http://" + n.Addr + "/")
	tok := heraldtest.Token(t, "42")

	class := strings.Replace(guideClass, `'ws://127.0.0.1:8000/ws/notifications/'`,
		`'ws://`+n.Addr+`/ws/notifications/?token=`+tok+`'`, 1)
	if class == guideClass {
		t.Fatal("URL not replaced")
	}
	p.mustEval(class+`
window.NotificationService = NotificationService;
window.guide = [];
const notifications = new NotificationService();
notifications.on('connected', () => guide.push('connected'));
notifications.on('uploadStarted', (data) => guide.push('started'));
notifications.on('uploadProgress', (data) => guide.push('step' + data.step_number));
notifications.on('uploadCompleted', (data) => guide.push('completed'));
notifications.on('uploadFailed', (data) => guide.push('failed'));
notifications.connect();
window.notifications = notifications;
`, nil)
	p.mustEval(`
window.TOKEN = `+"`"+tok+"`"+`;
window.plainWS = []; window.plainSSE = [];
const ws = new WebSocket('ws://`+n.Addr+`/ws/notifications/?token=' + TOKEN);
ws.onmessage = (event) => { console.log('📩 Notification:', JSON.parse(event.data)); plainWS.push(JSON.parse(event.data).type); };
const es = new EventSource('http://`+n.Addr+`/sse/notifications/?token=' + TOKEN);
es.onmessage = (event) => { console.log('📩 Notification:', JSON.parse(event.data)); plainSSE.push(JSON.parse(event.data).type); };
`, nil)
	p.waitFor(`guide[0] === "connected" && plainWS[0] === "connection_established" && plainSSE[0] === "connection_established"`, 15*time.Second)

	for _, m := range workflow(602) {
		publish(t, nil, "http://"+n.Addr, "42", m)
	}
	p.waitFor(`guide.includes("completed") && plainWS.length === 8 && plainSSE.length === 8`, 15*time.Second)
	var got struct {
		Guide []string `json:"guide"`
		WS    []string `json:"ws"`
		SSE   []string `json:"sse"`
	}
	time.Sleep(200 * time.Millisecond)
	p.mustEval(`({guide, ws: plainWS, sse: plainSSE})`, &got)
	if want := append([]string{"connected"}, wantWorkflow...); !reflect.DeepEqual(got.Guide, want) {
		t.Errorf("guide class saw %v, want %v", got.Guide, want)
	}
	want := []string{"connection_established", "oracle_upload_started"}
	for range 5 {
		want = append(want, "oracle_upload_progress")
	}
	want = append(want, "oracle_upload_completed")
	if !reflect.DeepEqual(got.WS, want) || !reflect.DeepEqual(got.SSE, want) {
		t.Errorf("plain WebSocket saw %v, EventSource saw %v, want %v", got.WS, got.SSE, want)
	}
	p.mustEval(`notifications.socket.onclose = null; notifications.disconnect()`, nil)
}

// TestClientJSRoute: Herald itself serves /herald.js (the minified client)
// and revalidates it by ETag.
func TestClientJSRoute(t *testing.T) {
	n := startHerald(t, nil, nil)
	resp, err := http.Get("http://" + n.Addr + "/herald.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET /herald.js: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("GET", "http://"+n.Addr+"/herald.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", resp2.StatusCode)
	}
}
