-- busted output handler: gtest-style lines per test, then one closing line
-- "N passed, N failed, N skipped" that CI reads.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.gtest"(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(("%d passed, %d failed, %d skipped\n"):format(handler.successesCount,
      handler.failuresCount + handler.errorsCount, handler.pendingsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
