"""What of an export's file has been sent, for exports that expire once downloaded (OSDI: "Once
downloaded, or after a period of time, the export may have the status of expired"). Each
download adds the byte spans it sent; the export expires when they cover the whole file, so a
download resumed with Range keeps working until every byte went out once, whatever the order
and however many requests it took.

Key: sent:<export id> → JSON [[start, stop], …], merged, expiring with the export."""
from __future__ import annotations

from typing import Iterable

from redis.asyncio import Redis

from domain import keys

MAX_SPANS = 256  # disjoint spans kept per export: a client asking for byte after odd byte cannot grow it past this

# KEYS[1] sent:<id>. ARGV[1] the file's size, ARGV[2] seconds the record lives, ARGV[3] MAX_SPANS,
# then start, stop, start, stop… Merges the spans into those sent before; answers 1 (and forgets
# them) when they now cover [0, size). Spans that would make more than MAX_SPANS are not kept.
_ADD = """
local raw = redis.call('GET', KEYS[1])
local spans = {}
if raw then spans = cjson.decode(raw) end
local before = #spans
for i = 4, #ARGV, 2 do table.insert(spans, {tonumber(ARGV[i]), tonumber(ARGV[i + 1])}) end
table.sort(spans, function(a, b) return a[1] < b[1] end)
local merged = {}
for _, span in ipairs(spans) do
  local last = merged[#merged]
  if last and span[1] <= last[2] then
    if span[2] > last[2] then last[2] = span[2] end
  else
    table.insert(merged, {span[1], span[2]})
  end
end
local size = tonumber(ARGV[1])
if #merged == 1 and merged[1][1] <= 0 and merged[1][2] >= size then
  redis.call('DEL', KEYS[1])
  return 1
end
if #merged > tonumber(ARGV[3]) and #merged > before then return 0 end
redis.call('SET', KEYS[1], cjson.encode(merged), 'EX', ARGV[2])
return 0
"""


class SentBytes:
    def __init__(self, redis: Redis):
        self._add = redis.register_script(_ADD)

    async def add(self, export_id: str, size: int, spans: Iterable[tuple[int, int]], ttl: int) -> bool:
        """Note `spans` ([start, stop) byte offsets) as sent; True when every byte of the file
        (`size` bytes) has now been sent at least once."""
        flat = [str(n) for span in spans for n in span]
        if not flat:
            return False
        return bool(await self._add(keys=[keys.sent_bytes(export_id)], args=[size, max(1, ttl), MAX_SPANS, *flat]))
