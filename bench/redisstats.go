package bench

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"
)

// RedisCommands is what the servers asked of Redis (--redis): commands by
// name (INFO commandstats calls, commands run by scripts included, summed
// over every given Redis server) during a phase, and per connection.
type RedisCommands struct {
	// Ramp counts the commands of the connect ramps (nothing published).
	Ramp map[string]int64 `json:"ramp"`
	// RampPerConnect is Ramp's total divided by the connections opened.
	RampPerConnect float64 `json:"ramp_per_connect"`
	// Storm counts the commands from the signal until every connection
	// was back (publishing included).
	Storm map[string]int64 `json:"storm,omitempty"`
	// StormPerReconnect is Storm's total, less what publishing cost at
	// the rate measured just before the signal, divided by the moved
	// connections.
	StormPerReconnect float64 `json:"storm_per_reconnect,omitempty"`
}

// redisCalls returns the calls of every command on the Redis servers at
// addrs, summed by command name.
func redisCalls(addrs []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, a := range addrs {
		info, err := redisInfo(a, "commandstats")
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(info, "\n") {
			// cmdstat_get:calls=12,usec=34,...
			l = strings.TrimSpace(l)
			name, rest, ok := strings.Cut(strings.TrimPrefix(l, "cmdstat_"), ":calls=")
			if !ok || !strings.HasPrefix(l, "cmdstat_") {
				continue
			}
			n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("redis %s commandstats: %q: %w", a, l, err)
			}
			out[name] += n
		}
	}
	return out, nil
}

// redisInfo sends INFO section to the Redis server at addr (no auth, no
// TLS: a benchmark's own servers) and returns the reply.
func redisInfo(addr, section string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n", len(section), section); err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	head = strings.TrimSpace(head)
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("redis %s: INFO answered %q", addr, head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("redis %s: INFO reply length %q", addr, head)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	return string(b), nil
}

// callsDelta returns b - a by command (commands with no calls in between
// left out) and its total.
func callsDelta(a, b map[string]int64) (map[string]int64, int64) {
	d := maps.Clone(b)
	var total int64
	for k, v := range d {
		v -= a[k]
		if v == 0 {
			delete(d, k)
			continue
		}
		d[k] = v
		total += v
	}
	return d, total
}
