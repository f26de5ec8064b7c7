package edge

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
)

// The demo (dev.enabled only): a page that signs in as a demo user and
// shows the guide's Oracle FBDI workflow live, and a publisher that plays
// the Celery worker's part with exactly the guide's message shapes.

//go:embed static/demo.html
var demoPage []byte

// demoSteps are the guide's five workflow steps.
var demoSteps = [...]struct{ name, msg string }{
	{"Preparing Data", "Preparing journal data for upload"},
	{"Upload to UCM", "Uploading file to UCM"},
	{"Interface Loader", "Running Interface Loader to process data"},
	{"Journal Import", "Running Journal Import"},
	{"AutoPost", "Running AutoPost"},
}

func (s *Server) handleDemoPage(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(demoPage)
}

// handleDevToken serves POST /dev/token?user=<id>: a one-hour token for a
// demo user, signed with the configured HMAC secret. Pages of the origins
// server.allowed_origins admits may read it cross-origin (the README's
// browser snippet from a local dev server).
func (s *Server) handleDevToken(ctx *fasthttp.RequestCtx) {
	if origin := string(ctx.Request.Header.Peek("Origin")); origin != "" && s.originAllowed(ctx, origin) {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", origin)
		ctx.Response.Header.Set("Vary", "Origin")
	}
	user := string(ctx.QueryArgs().Peek("user"))
	if user == "" {
		user = "42"
	}
	tok, err := auth.Sign(s.live.config().Auth.JWT.HMACSecret, "HS256", user, time.Hour, nil)
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"token": tok, "user_id": user})
}

// handleDemoUpload serves POST /dev/demo/upload?user=<id>[&fail=1][&step_ms=N]:
// it publishes the guide's workflow for that user in the background.
func (s *Server) handleDemoUpload(ctx *fasthttp.RequestCtx) {
	user := string(ctx.QueryArgs().Peek("user"))
	if !fanout.ValidChannel(fanout.UserChannel(user)) {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "invalid user")
		return
	}
	fail := ctx.QueryArgs().GetBool("fail")
	stepMS := ctx.QueryArgs().GetUintOrZero("step_ms")
	if stepMS <= 0 || stepMS > 10000 {
		stepMS = 1200
	}
	tx := 600 + rand.IntN(400)
	go s.playWorkflow(user, tx, fail, time.Duration(stepMS)*time.Millisecond)
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{"transaction_id": tx})
}

// playWorkflow publishes started, five progress steps, and completed (or
// failed at step 3), as the guide's Celery task does.
func (s *Server) playWorkflow(user string, tx int, fail bool, step time.Duration) {
	pub := func(v map[string]any) bool {
		v["transaction_id"] = tx
		v["timestamp"] = time.Now().UTC().Format("2006-01-02T15:04:05.000000")
		b, _ := json.Marshal(v)
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		_, err := s.broker.Publish(ctx, fanout.UserChannel(user), b, fanout.PublishOptions{})
		return err == nil
	}
	if !pub(map[string]any{"type": "oracle_upload_started", "message": fmt.Sprintf("Oracle upload started for transaction %d", tx)}) {
		return
	}
	for i, st := range demoSteps {
		select {
		case <-time.After(step):
		case <-s.life.done:
			return
		}
		if fail && i == 2 {
			pub(map[string]any{"type": "oracle_upload_failed", "message": "Oracle upload failed", "error": "Interface loader timeout"})
			return
		}
		pub(map[string]any{"type": "oracle_upload_progress", "step": st.name, "step_number": i + 1,
			"total_steps": len(demoSteps), "message": st.msg, "status": "processing"})
	}
	time.Sleep(step / 2)
	pub(map[string]any{"type": "oracle_upload_completed", "message": "Oracle upload completed successfully",
		"success": true, "result_path": fmt.Sprintf("/results/%d.csv", tx)})
}
