-- bench/lib.lua: timing, medians, shell commands and table printing for
-- bench/bench.lua. Nothing here knows about rcache_live.
local system = require "system"
local clock = system.monotime

local L = {}

L.clock = clock
L.sleep = system.sleep

--- The median of a list of numbers.
function L.median(xs)
  local s = {}
  for i = 1, #xs do s[i] = xs[i] end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- Runs fn() `runs` times; fn does `count` operations (or returns how many
-- it did). Returns the median rate in operations per second.
function L.rate(runs, count, fn, setup)
  local rates = {}
  for r = 1, runs do
    if setup then setup(r) end
    local t = clock()
    local done = fn(r) or count
    rates[r] = done / (clock() - t)
  end
  return L.median(rates)
end

function L.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command, returns its output; raises if it fails.
function L.shell(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 0) end
  return out
end

--- The resident set size of this process, in kB.
function L.rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

--- 12345.6 -> "12,346"; numbers under 100 keep two decimals.
function L.num(x)
  if x == nil then return "-" end
  if x ~= x then return "nan" end
  if math.abs(x) < 100 and math.type(x) == "float" then return ("%.2f"):format(x) end
  local s = ("%d"):format(math.floor(x + 0.5))
  repeat
    local n
    s, n = s:gsub("^(-?%d+)(%d%d%d)", "%1,%2")
  until n == 0
  return s
end

--- Prints rows (lists of strings) under headers, columns aligned; a
-- column whose header starts with "<" is left-aligned, others right.
function L.table(headers, rows)
  local width, left = {}, {}
  for c, h in ipairs(headers) do
    left[c] = h:sub(1, 1) == "<"
    headers[c] = left[c] and h:sub(2) or h
    width[c] = utf8.len(headers[c])
  end
  for _, row in ipairs(rows) do
    for c = 1, #headers do
      row[c] = tostring(row[c] == nil and "" or row[c])
      width[c] = math.max(width[c], utf8.len(row[c]))
    end
  end
  local function line(cells)
    local out = {}
    for c = 1, #headers do
      local pad = (" "):rep(width[c] - utf8.len(cells[c]))
      out[c] = left[c] and cells[c] .. pad or pad .. cells[c]
    end
    print("| " .. table.concat(out, " | ") .. " |")
  end
  line(headers)
  local rule = {}
  for c = 1, #headers do rule[c] = ("-"):rep(width[c]) end
  print("|-" .. table.concat(rule, "-|-") .. "-|")
  for _, row in ipairs(rows) do line(row) end
  print()
end

return L
