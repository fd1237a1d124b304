-- The caches of this nginx worker, made once, when a handler first needs
-- them. Making a cache does no I/O: the first operation connects, over
-- ngx.socket.tcp (a cosocket), and later ones reuse the worker's pooled
-- connections. Redis is where REDIS_URL (or REDIS_SOCKET, REDIS_HOST, ...)
-- says, else 127.0.0.1:6379; nginx.conf lets those variables through.
local rcache = require "rcache_live"

return {
  -- sessions: Active TTL, so every read gives a session its full TTL again
  sessions = rcache.new{ namespace = "session", active_ttl = true },
  -- API responses: kept for as long as they were stored for
  api = rcache.new{ namespace = "api", track = false },
  -- plain records, for the handlers of nginx.conf's other locations
  records = rcache.new{ namespace = "records" },
  -- API keys, read in the access phase
  apikeys = rcache.new{ namespace = "apikeys", track = false },
}
