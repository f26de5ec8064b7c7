package serve

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
)

// reloader reloads the configuration on SIGHUP and, while config.watch is
// on, when the config file's content changes (checked every
// config.watch_interval; content, not mtime, so editors that replace the
// file and Kubernetes ConfigMap symlink swaps are seen). A config that does
// not load or validate is logged with the reason and the running one kept.
func reloader(ctx context.Context, srv *edge.Server, log *slog.Logger, level *slog.LevelVar, cfg config.Config, path string, hup <-chan os.Signal, reload func() (config.Config, error)) {
	cur := cfg
	last, _ := os.ReadFile(path)
	timer := time.NewTimer(cur.Reload.WatchInterval)
	defer timer.Stop()
	apply := func(why string) {
		next, err := reload()
		if err != nil {
			log.Error("config reload failed; keeping the running config", "trigger", why, "err", err)
			return
		}
		res, err := srv.Reload(next)
		if err != nil {
			log.Error("config reload failed; keeping the running config", "trigger", why, "err", err)
			return
		}
		for _, k := range res.Restart {
			log.Warn("config key changed but needs a restart; keeping the running value", "key", k)
		}
		if next.Log.Level != cur.Log.Level {
			_ = level.UnmarshalText([]byte(next.Log.Level))
		}
		for _, k := range res.Restart {
			config.CopyKey(&next, cur, k)
		}
		cur = next
		log.Info("config reloaded", "trigger", why, "applied", res.Applied, "need_restart", res.Restart)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last, _ = os.ReadFile(path)
			apply("SIGHUP")
		case <-timer.C:
			if cur.Reload.Watch && path != "" {
				if b, err := os.ReadFile(path); err == nil && !bytes.Equal(b, last) {
					last = b
					apply("file changed")
				}
			}
			timer.Reset(cur.Reload.WatchInterval)
		}
	}
}
