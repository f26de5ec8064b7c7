// Package bench is Herald's load generator: it opens many WebSocket and SSE
// connections from loopback source addresses, publishes through the HTTP API
// at a fixed rate, and measures what a deployment cares about: connects per
// second, memory and CPU per connection of the server processes, and
// publish→receive latency with exact delivery accounting (every receiver
// checks the sequence numbers of every stream it receives for loss,
// duplicates and reordering).
//
// A run is driven by Run. Connections live in fleets: a fleet is either in
// this process or in a worker process (the same binary re-executed with a
// hidden --worker flag) that serves the fleet over JSON-RPC on its stdin and
// stdout, so runs larger than one process's file limit split across workers
// and their results are merged exactly (HDR histograms are merged, not
// averaged).
//
// The storm scenario (ScenarioStorm) holds every connection on one node,
// signals that node's process and measures how the clients move to the
// surviving nodes: time until they are back, refusals, and loss and
// duplication across the move.
package bench
