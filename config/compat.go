package config

import (
	"github.com/heraldrt/herald/compat"
)

// Compat configures the migration aids for applications that used Django
// Channels: ingesting channels_redis group_send traffic, so unchanged
// Celery code reaches Herald's clients.
type Compat struct {
	// ChannelsRedis reads the messages Django code sends with
	// channel_layer.group_send through channels_redis.
	ChannelsRedis compat.Config `koanf:"channels_redis"`
}
