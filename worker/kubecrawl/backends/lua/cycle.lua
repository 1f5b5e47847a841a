-- Commit finished outcomes and pop new leases in one round trip (docs/distributed.md, "Round trips per
-- page"): the places the acks free are handed out by the pop that follows, in the same script. The
-- bodies of commit.lua and pop.lua are this script's functions kc_commit and kc_pop (backends/redis.py
-- composes them); each takes its own KEYS and ARGV exactly as when called alone.
-- KEYS: commit's keys (ARGV[1] of them), then pop's keys
-- ARGV: 1 number of commit keys, 2 number of commit arguments, then commit's ARGV, then pop's ARGV
-- Returns {commit's reply, pop's reply}
local nck, nca = tonumber(ARGV[1]), tonumber(ARGV[2])
local ck, ca, pk, pa = {}, {}, {}, {}
for i = 1, nck do ck[i] = KEYS[i] end
for i = nck + 1, #KEYS do pk[#pk + 1] = KEYS[i] end
for i = 1, nca do ca[i] = ARGV[2 + i] end
for i = 3 + nca, #ARGV do pa[#pa + 1] = ARGV[i] end
-- a write that Redis refuses at maxmemory (noeviction) before anything else: an out-of-memory Redis
-- fails the whole call, so no lease is taken while commits cannot be stored (pop.lua does the same)
redis.call('HINCRBY', pk[7], 'cycles', 1)
local c = kc_commit(ck, ca)
if type(c) == 'table' and c.err then return c end
local p = kc_pop(pk, pa)
if type(p) == 'table' and p.err then return p end
return {c, p}
