-- examples/options.lua: the settings a cache is made with (README.md, "Options").
-- Constructing a cache does not connect: these caches are only printed.
local rcache = require "rcache_live"

-- every option; none is required
local cache = rcache.new{
  host = "127.0.0.1", port = 6379, db = 0,    -- or socket = "/run/redis/redis.sock"
  username = "app", password = "secret",      -- an ACL user; a password alone is plain AUTH
  default_ttl = 600,                          -- seconds
  active_ttl = true,
  track = true,
  namespace = "myapp",
  connect_timeout = 1, timeout = 0.5,         -- seconds
}
print(cache)   --> rcache_live cache (namespace "myapp", 127.0.0.1:6379): 0x...

-- a URL instead of host, port, db, username and password
print(rcache.new{ url = "redis://app:secret@127.0.0.1:6380/2" })   --> ... 127.0.0.1:6380 ...
print(rcache.new{ url = "unix:///run/redis/redis.sock?db=1" })     --> ... unix:/run/redis/redis.sock ...

-- a mistake is named
print(pcall(rcache.new, { ttl = 60 }))
--> false	rcache_live: new: unknown option "ttl" (options: active_ttl, codec, connect_timeout, db, default_ttl, host, keepalive_timeout, namespace, password, pool_size, port, socket, timeout, track, transport, url, username)

-- the effective settings from the environment and the defaults
local config = require "rcache_live.config"
print(config.host, config.port, config.db, config.default_ttl, config.active_ttl)
--> 127.0.0.1	6379	0	3600	false (without REDIS_* variables)
print(config.password)   --> ******** when REDIS_PASSWORD (or REDIS_URL) sets one, else nil
