-- rcache_live: a Redis cache for Lua with dictionary-style access, exact
-- JSON records, per-record TTL, Active TTL and cleanup of idle records.
--
-- The C core (rcache_live.core) holds the connection and does the
-- single-record operations in one round trip each. This file adds the
-- settings, the batch operations built on the core's pipeline (update, add,
-- bulk_delete, get_all_records, records/pairs, cleanup_inactive_records),
-- the same operations inside nginx over cosockets (rcache_live.cosocket),
-- and safe(), the nil, err form of every method.

local core = require "rcache_live.core"
local config = require "rcache_live.config"
local scripts = require "rcache_live.scripts"
local json = require "rcache_live.json"

local type, pairs, ipairs, next, error, tostring, pcall, select = type, pairs, ipairs, next, error, tostring, pcall, select
local getmetatable, rawget, setmetatable = getmetatable, rawget, setmetatable
local rawlen = rawlen or function(t) return #t end -- 5.1: # runs no __len on tables
local floor = math.floor

local methods = core.methods
local internal = core.internal
local BUCKETS = 256
local CLEANUP_BATCH = 1000
local SCAN_COUNT = 1000

local M = {
  _VERSION = core._VERSION,
  null = core.null,
  array_mt = core.array_mt,
  array = json.array,
  json = json,
}

local function fail(op, fmt, ...)
  error(("rcache_live: %s: " .. fmt):format(op, ...), 0)
end

-- The cosocket transport of each cache that does its I/O inside nginx
-- (rcache_live.cosocket); the others use the C core's blocking connection.
local transports = setmetatable({}, { __mode = "k" })

-- Sends the commands in one round trip and returns their replies.
local function pipeline(cache, op, commands)
  local transport = transports[cache]
  if transport then return transport:pipeline(op, commands) end
  return internal.pipeline(cache, op, commands)
end

-- Loads the scripts again, after a NOSCRIPT reply.
local function load_scripts(cache, op)
  local transport = transports[cache]
  if transport then return transport:load_scripts(op) end
  return internal.load_scripts(cache, op)
end

-- A key for a message: quoted, printable, at most 64 bytes shown (as the C
-- core quotes it).
local function quote(text)
  local shown = text:sub(1, 64):gsub('[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return ("\\x%02x"):format(c:byte())
  end)
  return '"' .. shown .. '"' .. (#text > 64 and "..." or "")
end

-- Raises for an error reply (naming the record when given its key text);
-- returns the reply otherwise.
local function checked(op, reply, ktext)
  if type(reply) == "table" and reply.err then
    if ktext then fail(op, "record %s: %s", quote(ktext), reply.err) end
    fail(op, "%s", reply.err)
  end
  return reply
end

local function is_noscript(reply)
  return type(reply) == "table" and type(reply.err) == "string" and reply.err:sub(1, 8) == "NOSCRIPT"
end

-- Runs script name's command (its second element is set to the script's
-- SHA1) in one round trip and returns the reply; after a NOSCRIPT reply
-- (the server lost its scripts) loads them and runs it once more.
local function run_script(cache, op, name, command)
  local reply
  for attempt = 1, 2 do
    command[2] = internal.sha(cache, name, op)
    reply = pipeline(cache, op, { command })[1]
    if not is_noscript(reply) or attempt == 2 then break end
    load_scripts(cache, op)
  end
  return reply
end

-- Runs MULTI, commands..., EXEC and returns EXEC's replies. A NOSCRIPT
-- inside EXEC means no script ran (they are all the same script), so reload
-- and run everything again, once.
local function transaction(cache, op, commands)
  local batch = { { "MULTI" } }
  for i = 1, #commands do batch[i + 1] = commands[i] end
  batch[#batch + 1] = { "EXEC" }
  for attempt = 1, 2 do
    local replies = pipeline(cache, op, batch)
    for i = 1, #batch - 1 do checked(op, replies[i]) end
    local results = checked(op, replies[#batch])
    if results == false then fail(op, "the transaction was aborted; nothing was written") end
    local reload = false
    for i = 1, #results do
      if is_noscript(results[i]) then reload = true else checked(op, results[i]) end
    end
    if not reload then return results end
    if attempt == 2 then fail(op, "the server keeps losing its scripts") end
    load_scripts(cache, op)
  end
end

local function ttl_ms(op, ttl, default_ms)
  if ttl == nil then return default_ms end
  if type(ttl) ~= "number" then fail(op, "ttl must be a number of seconds, got %s", type(ttl)) end
  local ms = floor(ttl * 1000 + 0.5)
  if not (ttl > 0 and ms >= 1 and ms < 9e15) then
    fail(op, "ttl must be a positive number of seconds (at least 0.001), got %s", tostring(ttl))
  end
  return ms
end

local function is_object(t)
  return type(t) == "table" and getmetatable(t) ~= core.array_mt and rawget(t, 1) == nil
end

-- The write script's command for records grouped by bucket (see by_bucket):
-- per bucket its three keys and its record keys; the TTL in ms twice (to
-- expire in, stored), then per bucket the number of its records followed
-- by { key text, json } each.
local function write_command(groups, order, ms)
  local keys, args = {}, { ms, ms }
  for g = 1, #order do
    local prefix, records = order[g], groups[order[g]]
    keys[#keys + 1] = prefix .. "a"
    keys[#keys + 1] = prefix .. "e"
    keys[#keys + 1] = prefix .. "t"
    args[#args + 1] = #records
    for i = 1, #records do
      local r = records[i]
      keys[#keys + 1] = r[1]
      args[#args + 1] = r[2]
      args[#args + 1] = r[3]
    end
  end
  local cmd = { "EVALSHA", false, #keys }
  for i = 1, #keys do cmd[3 + i] = keys[i] end
  for i = 1, #args do cmd[3 + #keys + i] = args[i] end
  return cmd
end

-- The plain command writing one record without bookkeeping.
local function set_command(record, ms)
  return { "SET", record[1], record[3], "PX", ms }
end

--- update(key, fields) -> merged record
-- One script call merges the top-level fields into the record (creating it
-- if missing), atomically: each field's value is encoded here, exactly, and
-- the script splices the JSON text, so no number is ever re-encoded by
-- Redis's own cjson (see scripts.lua).
function methods.update(cache, key, fields)
  local op = "update"
  if type(fields) ~= "table" then fail(op, "fields must be a table, got %s", type(fields)) end
  if not is_object(fields) then fail(op, "fields must be a table of named fields, not an array") end
  local rk, prefix, ktext = internal.key(cache, key, op)
  local track, active, default_ms = internal.policy(cache, op)
  local command = { "EVALSHA", false, 4, prefix .. "a", prefix .. "e", prefix .. "t", rk,
    ktext, active and 1 or 0, default_ms, track and 1 or 0 }
  for name, value in next, fields do -- raw: no __pairs runs
    if type(name) ~= "string" then
      fail(op, "field names must be strings, got %s", math.type and math.type(name) or type(name))
    end
    command[#command + 1] = name
    command[#command + 1] = internal.encode(cache, name, op)
    command[#command + 1] = internal.encode(cache, value, op, "field", name)
  end
  local reply = run_script(cache, op, "update", command)
  if type(reply) == "table" and reply[1] == "NOTJSON" then
    internal.decode(cache, reply[2], op, key) -- raises as a read of it would
    fail(op, "record %s is not valid JSON: %s", quote(ktext), reply[3])
  elseif type(reply) == "table" then
    local err = reply.err
    if err:sub(1, 10) == "NOTOBJECT " then fail(op, "record %s is not a JSON object", quote(ktext)) end
    fail(op, "record %s: %s", quote(ktext), err)
  end
  return internal.decode(cache, reply, op, key)
end

-- Groups items by bucket prefix, keeping their order within a bucket.
local function by_bucket(items)
  local groups, order = {}, {}
  for i = 1, #items do
    local prefix = items[i].prefix
    local g = groups[prefix]
    if not g then
      g = {}
      groups[prefix] = g
      order[#order + 1] = prefix
    end
    g[#g + 1] = items[i]
  end
  return groups, order
end

--- add(records [, ttl]) -> number of records written
-- All records or none, in one round trip: one script call (a plain MULTI ...
-- EXEC of SETs without bookkeeping).
function methods.add(cache, records, ttl)
  local op = "add"
  if type(records) ~= "table" then fail(op, "records must be a table, got %s", type(records)) end
  local track, _, default_ms = internal.policy(cache, op)
  local ms = ttl_ms(op, ttl, default_ms)
  local items, seen = {}, {}
  for key, value in next, records do -- raw: no __pairs runs
    local rk, prefix, ktext = internal.key(cache, key, op)
    if seen[ktext] then
      local other = seen[ktext]
      fail(op, "keys %s and %s name the same record",
        type(other) == "string" and quote(other) or ktext, type(key) == "string" and quote(key) or ktext)
    end
    seen[ktext] = key
    items[#items + 1] = { rk, ktext, internal.encode(cache, value, op, "record", ktext), prefix = prefix }
  end
  if #items == 0 then return 0 end
  if track then
    -- one script call writes every bucket: atomic, bookkeeping first
    local groups, order = by_bucket(items)
    checked(op, run_script(cache, op, "write", write_command(groups, order, ms)))
  else
    local commands = {}
    for i = 1, #items do commands[i] = set_command(items[i], ms) end
    transaction(cache, op, commands)
  end
  return #items
end

--- bulk_delete(keys) -> number of records that existed
function methods.bulk_delete(cache, keys)
  local op = "bulk_delete"
  if type(keys) ~= "table" then fail(op, "keys must be a list, got %s", type(keys)) end
  local track = internal.policy(cache, op)
  local items = {}
  for i = 1, rawlen(keys) do
    local rk, prefix, ktext = internal.key(cache, rawget(keys, i), op)
    items[i] = { rk, ktext, prefix = prefix }
  end
  if #items == 0 then return 0 end
  local groups, order = by_bucket(items)
  local sha = track and internal.sha(cache, "delete", op)
  local commands = {}
  for i = 1, #order do
    local prefix, group = order[i], groups[order[i]]
    local cmd
    if track then
      cmd = { "EVALSHA", sha, 3 + #group, prefix .. "a", prefix .. "e", prefix .. "t" }
      for j = 1, #group do cmd[#cmd + 1] = group[j][1] end
      for j = 1, #group do cmd[#cmd + 1] = group[j][2] end
    else
      cmd = { "DEL" }
      for j = 1, #group do cmd[#cmd + 1] = group[j][1] end
    end
    commands[i] = cmd
  end
  local results = transaction(cache, op, commands)
  local deleted = 0
  for i = 1, #results do deleted = deleted + results[i] end
  return deleted
end

-- A function returning the namespace's records page by page, as two lists
-- (keys, values), then nil. SCAN walks the keyspace; each page's values are
-- fetched with MGET in the same round trip as the next SCAN. Plain GETs:
-- a listing is not an access.
local function pages(cache, op, pattern)
  if pattern ~= nil and type(pattern) ~= "string" then
    fail(op, "pattern must be a string, got %s", type(pattern))
  end
  local _, _, _, ns = internal.policy(cache, op)
  local match = ns .. ":{[0-9a-f][0-9a-f]}:r:" .. (pattern or "*")
  local skip = #ns + 8 -- "<ns>:{xx}:r:"
  local cursor, pending, done = "0", nil, false
  return function()
    while not done or pending do
      local commands, scan_at, mget_at = {}, nil, nil
      if not done then
        commands[1] = { "SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT }
        scan_at = 1
      end
      if pending then
        local mget = { "MGET" }
        for i = 1, #pending do mget[i + 1] = pending[i] end
        commands[#commands + 1] = mget
        mget_at = #commands
      end
      local replies = pipeline(cache, op, commands)
      local record_keys = pending
      pending = nil
      if scan_at then
        local scan = checked(op, replies[scan_at])
        cursor, done = scan[1], scan[1] == "0"
        if #scan[2] > 0 then pending = scan[2] end
      end
      if mget_at then
        local keys, values, missing =
          internal.decode_page(cache, op, record_keys, checked(op, replies[mget_at]), skip)
        -- MGET gives nil both for a record gone since SCAN saw it (skip it)
        -- and for a key another client filled with a non-string (an error)
        if #missing > 0 then
          local probes = {}
          for i = 1, #missing do probes[i] = { "TYPE", missing[i] } end
          local types = pipeline(cache, op, probes)
          for i = 1, #types do
            if types[i] ~= "none" then
              fail(op, "record %s: holds a %s, not a record", quote(missing[i]:sub(skip + 1)), types[i])
            end
          end
        end
        if #keys > 0 then return keys, values end
      end
    end
    return nil
  end
end

--- get_all_records([pattern]) -> { key = value, ... }
-- pattern is a Redis glob over the user keys (default "*").
function methods.get_all_records(cache, pattern)
  local all = {}
  for keys, values in pages(cache, "get_all_records", pattern) do
    for i = 1, #keys do all[keys[i]] = values[i] end
  end
  return all
end

--- records([pattern]) -> iterator over key, value (what pairs(cache) uses)
function methods.records(cache, pattern)
  local next_page = pages(cache, "records", pattern)
  local keys, values, i = nil, nil, 0
  return function()
    i = i + 1
    if keys == nil or i > #keys then
      keys, values = next_page()
      i = 1
      if keys == nil then return nil end
    end
    return keys[i], values[i]
  end
end

--- cleanup_inactive_records(past_minutes) -> number of records deleted
-- Deletes, bucket by bucket and in batches, records whose last access is
-- older than past_minutes (0.1 = 6 seconds).
function methods.cleanup_inactive_records(cache, past_minutes)
  local op = "cleanup_inactive_records"
  if type(past_minutes) ~= "number" or not (past_minutes >= 0) or past_minutes == math.huge then
    fail(op, "past_minutes must be a number >= 0, got %s", tostring(past_minutes))
  end
  local track, _, _, ns = internal.policy(cache, op)
  if not track then fail(op, "needs track = true (without it no access is recorded)") end
  local idle = floor(past_minutes * 60000 + 0.5)
  local todo = {}
  for b = 0, BUCKETS - 1 do todo[b + 1] = ("%s:{%02x}:"):format(ns, b) end
  local deleted = 0
  while #todo > 0 do
    local sha = internal.sha(cache, "cleanup", op)
    local commands = {}
    for i = 1, #todo do
      local p = todo[i]
      commands[i] = { "EVALSHA", sha, 3, p .. "a", p .. "e", p .. "t", idle, CLEANUP_BATCH }
    end
    local replies = pipeline(cache, op, commands)
    local again = {}
    for i = 1, #replies do
      local r = replies[i]
      if is_noscript(r) then
        again[#again + 1] = todo[i]
      else
        checked(op, r)
        deleted = deleted + r[1]
        if r[2] >= CLEANUP_BATCH then again[#again + 1] = todo[i] end
      end
    end
    if #again > 0 and is_noscript(replies[1]) then load_scripts(cache, op) end -- lost them all
    todo = again
  end
  return deleted
end

core.metatable.__pairs = function(cache) return methods.records(cache), cache, nil end

-- ------------------------------------------------------------------------
-- Caches inside nginx: the same methods, with the single-record ones
-- written here in Lua so that they can yield on the cosocket (a C function
-- cannot be yielded across on LuaJIT). The C core builds the command and
-- reads the reply, exactly as over the blocking connection.

local cosocket_methods = {}
for name, fn in pairs(methods) do cosocket_methods[name] = fn end

-- Gives the reader back to the transport, passing the results through.
local function give_back(transport, reader, ...)
  transport:give_back(reader)
  return ...
end

-- The method running single-record operation op over the cache's cosocket.
local function cosocket_record_method(op)
  return function(cache, key, value, ttl)
    local transport = transports[cache]
    local request = internal.request(cache, op, key, value, ttl) -- bad input raises here
    local reader = transport:send(op, request, 1, true)
    if reader:noscript() then
      reader:take()
      transport:give_back(reader)
      transport:load_scripts(op)
      reader = transport:send(op, request, 1, true)
    end
    return give_back(transport, reader, internal.result(cache, op, key, reader))
  end
end

for _, op in ipairs { "get_record", "set_record", "delete_record", "exists", "ttl" } do
  cosocket_methods[op] = cosocket_record_method(op)
end

local cosocket_get, cosocket_set, cosocket_delete =
  cosocket_methods.get_record, cosocket_methods.set_record, cosocket_methods.delete_record

core.cosocket_metatable.__index = function(cache, key)
  local method = type(key) == "string" and cosocket_methods[key]
  if method then return method end
  return cosocket_get(cache, key)
end
core.cosocket_metatable.__newindex = function(cache, key, value)
  if value == nil then
    cosocket_delete(cache, key)
  else
    cosocket_set(cache, key, value)
  end
end
core.cosocket_metatable.__pairs = core.metatable.__pairs

--- new([options]) -> cache
function M.new(options)
  local settings = config.resolve(options, os.getenv, "new")
  settings.scripts = scripts
  if settings.transport ~= "cosocket" then return core.new(settings) end
  local transport = require("rcache_live.cosocket").new(settings)
  settings.shas = transport.shas
  local cache = core.new(settings)
  transports[cache] = transport
  return cache
end
M.RCacheLive = M.new

-- Every method is also a module function: rcache.get_record(cache, "update")
-- reads a record whose key is a method's name. The single-record ones pick
-- the blocking or the cosocket form by the cache.
for name, blocking in pairs(methods) do
  local cosocket = cosocket_methods[name]
  M[name] = blocking
  if cosocket ~= blocking then
    M[name] = function(cache, ...)
      if transports[cache] then return cosocket(cache, ...) end
      return blocking(cache, ...)
    end
  end
end

-- The results of a pcall as safe() gives them.
local function safe_results(ok, ...)
  if not ok then return nil, (...) end
  if select("#", ...) == 0 then return true end
  return ...
end

--- safe(cache) -> an object with the same methods, which return nil, err
-- instead of raising (OpenResty's convention); a method that returns
-- nothing returns true. get_record's miss stays a plain nil, without err.
function M.safe(cache)
  local wrapper = {}
  for name in pairs(methods) do
    local fn = M[name]
    wrapper[name] = function(_, ...) return safe_results(pcall(fn, cache, ...)) end
  end
  return wrapper
end

return M
