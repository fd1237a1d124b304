-- rcache_live.config: the settings a cache is made with.
--
-- The module itself is a table of the effective settings from the
-- environment and the defaults (the password is shown as "********", never
-- in clear). config.resolve(options) is what rcache_live.new uses: explicit
-- options over the environment over the defaults, checked.

local tonumber, tostring, type, pairs, error = tonumber, tostring, type, pairs, error
local floor, huge = math.floor, math.huge

local M = {}

local defaults = {
  host = "127.0.0.1",
  port = 6379,
  db = 0,
  default_ttl = 3600,
  active_ttl = false,
  track = true,
  namespace = "rcache",
  connect_timeout = 5,
  timeout = 5,
  pool_size = 30,
  keepalive_timeout = 60,
}

-- Inside nginx (lua-nginx-module) I/O goes over its cosockets by default:
-- a blocking socket would stall every request of the worker.
local ngx = rawget(_G, "ngx")
M.in_nginx = type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function"
defaults.transport = M.in_nginx and "cosocket" or "hiredis"

-- Each option: a checker returning true or the expected kind as text.
local function is_string(v) return type(v) == "string" and v ~= "" or "a non-empty string" end
local function is_boolean(v) return type(v) == "boolean" or "a boolean" end
local function is_seconds(v)
  return type(v) == "number" and v > 0 and v < huge or "a positive number of seconds"
end
local function is_ttl(v)
  -- TTLs are kept in whole milliseconds: below 1 ms there would be none
  return type(v) == "number" and v >= 0.001 and v < huge or "a number of seconds >= 0.001"
end
local function is_integer_in(lo, hi)
  return function(v)
    return type(v) == "number" and v == floor(v) and v >= lo and v <= hi
      or ("an integer from %d to %d"):format(lo, hi)
  end
end
local function is_namespace(v)
  -- no braces (the bucket's hash tag follows it) and no glob characters
  -- (listings match on it); at most 128 bytes
  return type(v) == "string" and #v <= 128 and v:match("^[%w_%.%-:/]+$") ~= nil
    or "1 to 128 letters, digits or _ . - : /"
end
local function is_transport(v)
  if v == "hiredis" or (v == "cosocket" and M.in_nginx) then return true end
  return v == "cosocket" and "\"hiredis\" outside nginx (\"cosocket\" needs nginx's lua module)"
    or "\"hiredis\" or \"cosocket\""
end
local function is_codec(v)
  return type(v) == "table" and type(v.encode) == "function" and type(v.decode) == "function"
    or "a table with encode and decode functions"
end

local checks = {
  host = is_string, port = is_integer_in(1, 65535), db = is_integer_in(0, 1e9),
  username = is_string, password = is_string, socket = is_string, url = is_string,
  default_ttl = is_ttl, active_ttl = is_boolean, track = is_boolean,
  namespace = is_namespace, connect_timeout = is_seconds, timeout = is_seconds,
  codec = is_codec, transport = is_transport, pool_size = is_integer_in(1, 1e6),
  keepalive_timeout = is_seconds,
}
M.option_names = {}
for name in pairs(checks) do M.option_names[#M.option_names + 1] = name end
table.sort(M.option_names)

local function fail(op, fmt, ...)
  error(("rcache_live: %s: " .. fmt):format(op, ...), 0)
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parses "redis://[user[:password]@]host[:port][/db]" or
-- "unix://[user[:password]@]/path/to/socket[?db=N]" into settings.
function M.parse_url(url, op)
  op = op or "new"
  local out = {}
  local scheme, rest = url:match("^(%a[%w+]*)://(.*)$")
  if scheme ~= "redis" and scheme ~= "unix" then
    -- name the scheme only: the rest may hold a password
    fail(op, "url must start with redis:// or unix://, got scheme %q", scheme or url:match("^[%w+]*"))
  end
  local userinfo, after = rest:match("^(.-)@(.*)$")
  if userinfo then
    rest = after
    local user, password = userinfo:match("^(.-):(.*)$")
    if user then
      if user ~= "" then out.username = unescape(user) end
      if password ~= "" then out.password = unescape(password) end
    elseif userinfo ~= "" then
      out.username = unescape(userinfo)
    end
  end
  if scheme == "unix" then
    local path, query = rest:match("^([^?]+)%??(.*)$")
    if not path then fail(op, "url has no socket path") end
    out.socket = unescape(path)
    local db = query:match("db=(%d+)")
    if db then out.db = tonumber(db) end
    return out
  end
  local host, port, db = rest:match("^%[([^%]]+)%]:?(%d*)/?(%d*)$")
  if not host then host, port, db = rest:match("^([^:/]*):?(%d*)/?(%d*)$") end
  if not host then fail(op, "cannot parse the url") end
  if host ~= "" then out.host = host end
  if port ~= "" then out.port = tonumber(port) end
  if db ~= "" then out.db = tonumber(db) end
  return out
end

-- The settings the environment asks for; getenv is os.getenv or a stand-in.
local function from_env(getenv, op)
  local env = {}
  local url = getenv("REDIS_URL")
  if url and url ~= "" then
    for k, v in pairs(M.parse_url(url, op)) do env[k] = v end
  end
  local function number(var)
    local text = getenv(var)
    if text == nil or text == "" then return nil end
    local n = tonumber(text)
    if n == nil then fail(op, "%s must be a number, got %q", var, text) end
    return n
  end
  local function text(var)
    local v = getenv(var)
    if v ~= nil and v ~= "" then return v end
  end
  env.host = text("REDIS_HOST") or env.host
  env.port = number("REDIS_PORT") or env.port
  env.db = number("REDIS_DB") or env.db
  env.username = text("REDIS_USERNAME") or env.username
  env.password = text("REDIS_PASSWORD") or env.password
  env.socket = text("REDIS_SOCKET") or env.socket
  env.default_ttl = number("REDIS_DEFAULT_TTL")
  local active = getenv("REDIS_ACTIVE_TTL")
  if active ~= nil and active ~= "" then
    local a = active:lower()
    if a == "true" or a == "1" or a == "yes" then
      env.active_ttl = true
    elseif a == "false" or a == "0" or a == "no" then
      env.active_ttl = false
    else
      fail(op, "REDIS_ACTIVE_TTL must be true/1/yes or false/0/no, got %q", active)
    end
  end
  return env
end

-- Explicit options over the environment over the defaults, every value
-- checked. Raises "rcache_live: <op>: ..." naming the bad option.
function M.resolve(options, getenv, op)
  op = op or "new"
  getenv = getenv or os.getenv
  if options ~= nil and type(options) ~= "table" then
    fail(op, "options must be a table, got %s", type(options))
  end
  options = options or {}
  for name, value in pairs(options) do
    local check = type(name) == "string" and checks[name]
    if not check then
      fail(op, "unknown option %q (options: %s)", tostring(name), table.concat(M.option_names, ", "))
    end
    local ok = check(value)
    if ok ~= true then
      fail(op, "option '%s' must be %s, got %s", name, ok, type(value) == "number" and tostring(value) or type(value))
    end
  end
  local s = {}
  for k, v in pairs(defaults) do s[k] = v end
  for k, v in pairs(from_env(getenv, op)) do s[k] = v end
  if options.url then
    -- an explicit url names the whole connection: nothing of it comes from
    -- the environment (its credentials belong to another server)
    s.host, s.port, s.socket, s.db, s.username, s.password = nil, defaults.port, nil, defaults.db, nil, nil
    for k, v in pairs(M.parse_url(options.url, op)) do s[k] = v end
  end
  if options.host or options.port then s.socket = nil end
  for k, v in pairs(options) do
    if k ~= "url" then s[k] = v end
  end
  s.host = s.host or defaults.host
  for name, value in pairs(s) do
    local ok = checks[name](value)
    if ok ~= true then fail(op, "setting '%s' must be %s, got %s", name, ok, tostring(value)) end
  end
  if s.active_ttl and not s.track then
    fail(op, "active_ttl needs track = true (the stored TTL is part of the bookkeeping)")
  end
  return s
end

-- The module's own fields: the effective settings from the environment.
local ok, effective = pcall(M.resolve, nil, os.getenv, "config")
if ok then
  for k, v in pairs(effective) do M[k] = v end
  if M.password then M.password = "********" end
else
  M.error = effective
end

return M
