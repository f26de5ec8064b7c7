package fanout

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
)

// User notification preferences (PreferenceStore): one string key per user,
// "<base>prefs:<id>", on the shard (or cluster partition) of the channel
// "user:<id>", without expiry, so every node, including ones started later,
// reads the same preferences.

// SetPreferences stores a user's notification preferences (an opaque
// string) on the user's shard, without expiry.
func (b *RedisBroker) SetPreferences(ctx context.Context, user, prefs string) error {
	s := b.sub(UserChannel(user))
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	key := s.base + "prefs:" + user
	cmd := s.client.B().Set().Key(key).Value(prefs).Build()
	if prefs == "" {
		cmd = s.client.B().Del().Key(key).Build()
	}
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("store preferences of %s on redis %s: %w", user, s.name, err)
	}
	return nil
}

// Preferences returns a user's stored preferences ("" when none).
func (b *RedisBroker) Preferences(ctx context.Context, user string) (string, error) {
	s := b.sub(UserChannel(user))
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	v, err := s.client.Do(ctx, s.client.B().Get().Key(s.base+"prefs:"+user).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read preferences of %s on redis %s: %w", user, s.name, err)
	}
	return v, nil
}
