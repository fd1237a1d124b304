-- The examples and the README: every examples/*.lua runs against the test
-- server, exits 0, prints what its comments promise and leaves the server as
-- it found it; every Lua block of README.md is part of an example file, so
-- the README cannot show code that does not run.
local H = require "support.helpers"
local rcache = require "rcache_live"

local LUA = H.lua
local MAX_SLEEP = 2 -- seconds an example may sleep, in all

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

local function example_files(glob)
  local p = assert(io.popen("ls " .. (glob or "examples/*.lua") .. " 2>/dev/null"))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  table.sort(files)
  return files
end

-- The ```lua fenced blocks of a Markdown text, in order.
local function lua_blocks(markdown)
  local blocks = {}
  for block in markdown:gmatch("\n```lua\n(.-\n)```") do blocks[#blocks + 1] = block end
  return blocks
end

-- The seconds of sleep an example asks for: sleep(x) calls of a helper and
-- os.execute("sleep x").
local function sleep_seconds(source)
  local total = 0
  for s in source:gmatch("[^%w_]sleep%(([%d%.]+)%)") do total = total + tonumber(s) end
  for s in source:gmatch("[\"']sleep ([%d%.]+)[\"']") do total = total + tonumber(s) end
  return total
end

local function server_ms()
  local t = H.raw("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local CLEARED = {
  "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD",
  "REDIS_SOCKET", "REDIS_DEFAULT_TTL", "REDIS_ACTIVE_TTL",
}

-- Runs an example on the test server's socket in database db (emptied
-- first), with no other REDIS_* variable than extra_env. Returns a table:
-- ok, code, out (stdout lines), err (stderr text), seconds.
local function run_example(path, db, extra_env)
  assert.equal("OK", H.cli("-n", db, "FLUSHDB"))
  local errfile = os.tmpname()
  local cmd = { "env" }
  for _, name in ipairs(CLEARED) do cmd[#cmd + 1] = "-u " .. name end
  cmd[#cmd + 1] = "REDIS_SOCKET=" .. H.shell_quote(H.socket)
  cmd[#cmd + 1] = "REDIS_DB=" .. db
  for name, value in pairs(extra_env or {}) do cmd[#cmd + 1] = name .. "=" .. H.shell_quote(value) end
  cmd[#cmd + 1] = LUA .. " " .. H.shell_quote(path) .. " 2>" .. H.shell_quote(errfile)
  local started = server_ms()
  local out, code = H.run(table.concat(cmd, " "))
  local ok = code == 0
  local seconds = (server_ms() - started) / 1000
  local err = read_file(errfile)
  os.remove(errfile)
  return { ok = ok, code = code, out = lines_of(out), text = out, err = err, seconds = seconds }
end

-- Expected output: a string is an exact line; a function is a predicate on
-- a line. They must appear in this order (other lines may come between).
-- { anywhere = "line" } must appear somewhere.
local function near(prefix, x, tolerance)
  return function(line)
    if line:sub(1, #prefix) ~= prefix then return false end
    local n = tonumber(line:sub(#prefix + 1))
    return n ~= nil and math.abs(n - x) <= tolerance
  end
end

local function pattern(p)
  return function(line) return line:find(p) ~= nil end
end

local function assert_output(expected, run, name)
  local at = 1
  for i, want in ipairs(expected) do
    if type(want) == "table" then
      local seen = false
      for _, line in ipairs(run.out) do seen = seen or line == want.anywhere end
      assert(seen, ("%s: expected a line %q in:\n%s"):format(name, want.anywhere, run.text))
    else
      local found = false
      while at <= #run.out and not found do
        local line = run.out[at]
        if type(want) == "string" then found = line == want else found = want(line) end
        at = at + 1
      end
      assert(found, ("%s: expected line #%d (%s) after the earlier ones, in:\n%s"):format(
        name, i, type(want) == "string" and ("%q"):format(want) or "a predicate", run.text))
    end
  end
end

-- What a chunk of Lua needs to compile here.
local function compiles(source) return (loadstring or load)(source) ~= nil end

-- Examples that show what only some runtimes have: the feature, whether
-- this runtime has it, and how a runtime without it stops the example
-- (checked, so that a mark cannot outlive its reason).
local NEEDS = {
  ["examples/closing.lua"] = {
    "to-be-closed variables (Lua 5.4)", compiles("local x <close> = nil"), "unexpected symbol near '<'",
  },
  ["examples/data_layout.lua"] = {
    "bitwise operators (Lua 5.3+)", compiles("return 1 ~ 1"), "expected near '~'",
  },
  ["examples/exact_data.lua"] = {
    "64-bit integers (Lua 5.3+)", H.has_integers, "attempt to call field 'type' %(a nil value%)",
  },
  ["examples/codec_cjson.lua"] = {
    "64-bit integers (Lua 5.3+)", H.has_integers, "attempt to call field 'type' %(a nil value%)",
  },
  ["examples/pairs.lua"] = {
    "__pairs (Lua 5.2+)", H.has_pairs_metamethod, "table expected, got userdata",
  },
}

local NOT_CONNECTED = "rcache_live: exists: no such file or directory (unix:<path>)"

local EXPECTED = {
  ["examples/quickstart.lua"] = {
    "rcache_live " .. rcache._VERSION,
    pattern('^init    rcache%.new%(%) %-> rcache_live cache %(namespace "rcache", unix:.+%)$'),
    'set     cache["user:1"] = {"age":25,"name":"Alice"}',
    'get     cache["user:1"] -> {"age":25,"name":"Alice"}',
    'get     cache["nobody"] -> nil',
    'update  cache:update("user:1", { age = 26 }) -> {"age":26,"name":"Alice"}',
    'add     cache:add{ ["user:2"] = ..., ["user:3"] = ... } -> 2',
    'delete  cache:delete_record("user:3") -> true',
    'delete  cache["user:2"] = nil -> exists: false',
    'list    cache:get_all_records("user:*") -> user:1, user:4',
    "cleanup cache:cleanup_inactive_records(1 / 60) -> 1 deleted; temp:1 exists: false, user:1 exists: true",
    pattern("^active  ttl after 0%.5 s: 1%.[45] s$"),
    'active  read {"user":"Alice"} -> ttl back to 2.0 s',
    'ttl     cache:ttl("otp:1") -> 30 s, cache:ttl("nobody") -> nil',
    "tidy    bulk_delete -> 5",
    "done",
  },
  ["examples/usage.lua"] = {
    "Alice", "nil", "Bob", "integer keys are stored as text",
    "true", "false", "nil", "1",
    "10", "Alice\tnil",
    { anywhere = "user:1\tAlice" }, { anywhere = "user:2\tBob" },
    near("", 30, 0.1), "true", "nil",
  },
  ["examples/pairs.lua"] = { { anywhere = "user:1\tAlice" }, { anywhere = "user:2\tBob" } },
  ["examples/update.lua"] = { "Alice\t26", "26", "1", "Bergen\tnil\ttrue" },
  ["examples/bulk.lua"] = {
    "2\t1\t2", "false\trcache_live: add: record \"key4\": cannot encode a function (at .callback)", "false", "4",
  },
  ["examples/method_keys.lua"] = { "function", "a key named like a method", "a key named like a method" },
  ["examples/closing.lua"] = { "false\trcache_live: get_record: the cache is closed", "hello" },
  ["examples/active_ttl.lua"] = {
    near("", 1.5, 0.15), near("Alice\t", 2, 0.1), near("", 2, 0.1), "idle\ttrue", "true",
  },
  ["examples/cleanup.lua"] = { "1", "false\ttrue", "0" },
  ["examples/exact_data.lua"] = {
    "integer\ttrue", "1700000000123456789", "true\t0.30000000000000004", "float", "[]\t{}",
    "true\t3\ttrue",
    "rcache_live: set_record: cannot encode a function (at .f)",
    "rcache_live: set_record: sparse array: key 3 but only 2 elements",
    "rcache_live: set_record: table mixes array and object keys",
    "rcache_live: set_record: cannot encode NaN or infinity (at .n)",
    "rcache_live: set_record: cyclic table (at .self)",
    "false", "[1,2.5,null,[]]", "integer",
  },
  ["examples/codec_cjson.lua"] = {
    "integer\t9007199254740993", "float\t9.007199254741e+15", "false\t0.33333333333333",
    "float\t9.2233720368548e+18", "true",
  },
  ["examples/data_layout.lua"] = { "cb", "rcache:{cb}:r:user:1", "rcache:{cb}:a" },
  ["examples/errors.lua"] = {
    "rcache_live: set_record: cannot encode a function (at .callback)",
    "rcache_live: set_record: ttl must be a positive number of seconds (at least 0.001), got -5",
    "rcache_live: get_record: key must be a string or an integer, got table",
    "false",
    "rcache_live: get_record: connection refused (127.0.0.1:1)",
    'rcache_live: get_record: record "legacy" is not valid JSON: invalid JSON at byte 2: invalid string in json text',
    "nil",
    "true",
    "1",
    "nil",
    "nil\trcache_live: set_record: key must be a string or an integer, got a float (1.5)",
    "nil\trcache_live: get_record: connection refused (127.0.0.1:1)",
    NOT_CONNECTED,
    "next call:\tfalse",
  },
  ["examples/options.lua"] = {
    pattern('^rcache_live cache %(namespace "myapp", 127%.0%.0%.1:6379%): 0x%x+$'),
    pattern('^rcache_live cache %(namespace "rcache", 127%.0%.0%.1:6380%): 0x%x+$'),
    pattern('^rcache_live cache %(namespace "rcache", unix:/run/redis/redis%.sock%): 0x%x+$'),
    'false\trcache_live: new: unknown option "ttl" (options: active_ttl, codec, connect_timeout, db, '
      .. "default_ttl, host, keepalive_timeout, namespace, password, pool_size, port, socket, timeout, track, "
      .. "transport, url, username)",
    pattern("^127%.0%.0%.1\t6379\t%d+\t3600\tfalse$"),
    "nil",
  },
}

-- Whatever an example leaves in its database, when it leaves something.
local LEAVES = {
  ["examples/data_layout.lua"] = {
    "rcache:{cb}:a", "rcache:{cb}:e", "rcache:{cb}:r:user:1", "rcache:{cb}:t",
  },
}

local function keys_in(db)
  local out = H.cli("-n", db, "--scan")
  local keys = {}
  for key in out:gmatch("[^\n]+") do keys[#keys + 1] = key end
  table.sort(keys)
  return keys
end

local files = example_files()

describe("examples/", function()
  it("holds the examples the README promises, each with expected output here", function()
    assert.is_true(#files >= 13, "examples/*.lua found: " .. #files)
    assert.is_true(#files <= 15, "more examples than spare databases (1..15)")
    for _, file in ipairs(files) do
      assert.is_table(EXPECTED[file], file .. " has no expected output in spec/examples_spec.lua")
    end
    for file in pairs(EXPECTED) do
      local f = io.open(file)
      assert(f, file .. " is missing")
      f:close()
    end
    local readme = read_file("README.md")
    for name in readme:gmatch("examples/([%w_]+%.lua)") do
      local f = io.open("examples/" .. name)
      assert(f, "README.md names examples/" .. name .. ", which does not exist")
      f:close()
    end
  end)

  for i, file in ipairs(files) do
    it(file .. " sleeps at most " .. MAX_SLEEP .. " s", function()
      local seconds = sleep_seconds(read_file(file))
      assert(seconds <= MAX_SLEEP, ("%s sleeps %.1f s"):format(file, seconds))
    end)

    local needs = NEEDS[file]
    if needs and not needs[2] then
      it(file .. " needs " .. needs[1] .. ", which " .. H.lua .. " lacks: it stops there", function()
        local run = run_example(file, i)
        assert.is_false(run.ok, run.text)
        assert.matches(needs[3], run.err)
      end)
    else
      it(file .. " runs, exits 0, prints what it promises and tidies up", function()
        local run = run_example(file, i)
        assert(run.ok and run.code == 0, ("%s exited %s\nstdout:\n%s\nstderr:\n%s"):format(
          file, tostring(run.code), run.text, run.err))
        assert.is_nil(run.text:find("stack traceback", 1, true))
        assert_output(EXPECTED[file] or {}, run, file)
        assert(run.seconds < MAX_SLEEP + 2, ("%s took %.2f s"):format(file, run.seconds))
        assert.same(LEAVES[file] or {}, keys_in(i))
      end)
    end
  end

  it("examples/errors.lua reports a failed read on stderr in get_or_nil", function()
    local run = run_example("examples/errors.lua", 1)
    assert.equal(0, run.code)
    assert.matches("cache unavailable: rcache_live: get_record: connection refused %(127%.0%.0%.1:1%)\n",
      run.err)
  end)

  it("examples/data_layout.lua leaves its record where the README says, with a TTL", function()
    if NEEDS["examples/data_layout.lua"][2] then
      run_example("examples/data_layout.lua", 1)
    else -- the example's own code cannot compile here: what it does with the library
      assert.equal("OK", H.cli("-n", 1, "FLUSHDB"))
      local c = rcache.new { socket = H.socket, db = 1 }
      c["user:1"] = { name = "Alice" }
      c:close()
    end
    local function cli(...) return H.cli("-n", 1, ...) end
    assert.equal("string", cli("TYPE", "rcache:{cb}:r:user:1"))
    assert.equal('{"name":"Alice"}', cli("GET", "rcache:{cb}:r:user:1"))
    assert.equal("zset", cli("TYPE", "rcache:{cb}:a"))
    assert.equal("zset", cli("TYPE", "rcache:{cb}:e"))
    assert.equal("hash", cli("TYPE", "rcache:{cb}:t"))
    assert.equal("3600000", cli("HGET", "rcache:{cb}:t", "user:1"))
    local ttl = tonumber(cli("PTTL", "rcache:{cb}:r:user:1"))
    assert.is_true(ttl > 3590000 and ttl <= 3600000, tostring(ttl))
    for _, k in ipairs { "a", "e", "t" } do
      -- expires an eighth of a TTL after its last record (read a little later)
      local left = tonumber(cli("PTTL", "rcache:{cb}:" .. k))
      assert.is_true(left > ttl + 450000 - 1000 and left <= 3600000 + 450000, k .. ": " .. left)
    end
    -- and the library puts the key in the same bucket
    local cache = H.cache()
    assert.matches(":{cb}:r:user:1$", H.record_key(cache, "user:1"))
    cache:close()
    assert.equal("OK", H.cli("-n", 1, "FLUSHDB"))
  end)

  it("examples/options.lua shows the password from the environment masked", function()
    local run = run_example("examples/options.lua", 1, { REDIS_PASSWORD = "s3cret-pw" })
    assert.equal(0, run.code)
    assert_output({ "********" }, run, "options.lua")
    assert.is_nil(run.text:find("s3cret-pw", 1, true))
    assert.is_nil(run.err:find("s3cret-pw", 1, true))
  end)
end)

describe("README.md", function()
  local readme = read_file("README.md")
  local blocks = lua_blocks(readme)
  local sources = {}
  for _, file in ipairs(files) do sources[file] = read_file(file) end
  -- the nginx handlers run under nginx only (spec/nginx_spec.lua drives
  -- them), but the README may quote them too
  for _, file in ipairs(example_files("examples/nginx/*.lua")) do sources[file] = read_file(file) end

  it("has the sections of the original README, and more", function()
    for _, heading in ipairs {
      "## What it is", "## Install", "## Quick start", "## Usage", "### Initialize the cache",
      "### Set and get a record", "### Field updates", "### Bulk insert", "### Delete a record",
      "### Get all records", "### Cleanup inactive records", "### TTL", "### Keys named like methods",
      "### Closing", "## Active TTL", "## Cleanup of idle records", "## Data", "## Data layout in Redis",
      "## Errors", "## Options", "## Development", "## License",
    } do
      assert.is_truthy(readme:find("\n" .. heading, 1, true), heading)
    end
  end)

  it("has Lua blocks to check", function()
    assert.is_true(#blocks >= 20, "```lua blocks found: " .. #blocks)
  end)

  for n, block in ipairs(blocks) do
    local first = block:match("^[^\n]*")
    it(("Lua block %d (%s) is part of a file in examples/"):format(n, first), function()
      local holders = {}
      for file, source in pairs(sources) do
        if source:find(block, 1, true) then holders[#holders + 1] = file end
      end
      assert(#holders > 0, "no example holds this README block verbatim:\n" .. block)
    end)
  end
end)
