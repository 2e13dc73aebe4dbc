"""Redis store (``globesms[redis]``): one Lua script per decision, for many hosts.

``check`` is one round trip (one EVALSHA); ``start`` is two on success (reserve the challenge and
every limit in one script, then record the message id). Time comes from Redis (``TIME``), so
hosts with skewed clocks still agree. Every key expires. Numbers and rate keys appear only as
keyed HMACs.

All keys of one store share one hash tag (``{v}`` after the prefix): the start script decides
the number's challenge together with the rate-key, prefix, country and global budgets and the
conversion gate, so on Redis Cluster they must live in one slot to stay one atomic script. A
second application on the same cluster gets its own slot by using its own ``prefix``.

Socket timeouts are short and nothing is retried (a retried script could apply twice): an
unreachable Redis raises :class:`StoreUnavailable` within ``timeout`` and approves nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import StoreUnavailable
from ._engine import CheckOutcome, CheckRequest, Reservation, StartRequest
from ._policy import LOW_CONVERSION, Record, Refusal

try:
    import redis
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "RedisStore needs the redis extra: pip install 'globesms[redis]'"
    ) from exc

_COMMON = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function at_ms(t) return math.floor(t * 1000) end
local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
local RECORD = {'id', 'mac', 'seed', 'exp', 'rs', 'n', 'w', 'mid', 'cc', 'px'}
"""

START = _COMMON + """
local t = now()
local ttl, max_checks = tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, growth, same = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10] == '1'
local nb = tonumber(ARGV[11])
local r = hash(KEYS[1])
local live = r['id'] ~= nil and tonumber(r['exp']) > t
if live then
  if tonumber(r['w']) >= max_checks then
    return {'R', 'ChallengeLocked', tostring(tonumber(r['exp']) - t)}
  end
  if tonumber(r['rs']) > t then
    return {'R', 'ResendCooldown', tostring(tonumber(r['rs']) - t)}
  end
end
local counted = {}
local a = 12
for i = 1, nb do
  local code, limit, window = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local idx = math.floor(t / window)
  local count = tonumber(redis.call('HGET', KEYS[1 + i], tostring(idx)) or '0')
  if count >= limit then return {'R', code, tostring((idx + 1) * window - t)} end
  counted[i] = {idx, count, window}
end
local gate_on = ARGV[a] == '1'
local monitored, gates = {}, {}
local gw, gidx
if gate_on then
  gw = tonumber(ARGV[a + 1])
  local gmin, gratio = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local gblock, gmax, gmon = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6] == '1'
  gidx = math.floor(t / gw)
  local overlap = 1 - (t - gidx * gw) / gw
  for k = 2 + nb, #KEYS do
    local g = hash(KEYS[k])
    local blocked, strikes = tonumber(g['until'] or '0'), tonumber(g['strikes'] or '0')
    local refusal, new_block = nil, false
    if blocked > t then
      refusal = blocked - t
    else
      local s = tonumber(g['s' .. gidx] or '0') + tonumber(g['s' .. (gidx - 1)] or '0') * overlap
      if s >= gmin then
        local ap = tonumber(g['a' .. gidx] or '0')
          + tonumber(g['a' .. (gidx - 1)] or '0') * overlap
        if ap / s < gratio then
          refusal = math.min(gblock * 2 ^ strikes, gmax)
          new_block = true
        end
      end
    end
    if refusal ~= nil and gmon then
      monitored[#monitored + 1] = tostring(refusal)
    elseif refusal ~= nil then
      if new_block then
        redis.call('DEL', KEYS[k])
        redis.call('HSET', KEYS[k], 'until', tostring(t + refusal), 'strikes', strikes + 1)
        redis.call('PEXPIREAT', KEYS[k], at_ms(t + refusal + gw))
      end
      return {'R', 'LowConversion', tostring(refusal)}
    end
    gates[#gates + 1] = {KEYS[k], g}
  end
end
local sends, wrong = 1, 0
if live then
  sends, wrong = tonumber(r['n']) + 1, tonumber(r['w'])
end
local id, mac, seed, mid = ARGV[1], ARGV[2], ARGV[3], ''
if live and same then id, mac, seed, mid = r['id'], r['mac'], r['seed'], r['mid'] end
local exp = t + ttl
local cd = 0
if cooldown >= 0 then cd = math.min(cooldown * growth ^ (sends - 1), ttl) end
local rs = t + cd
local fields = {'id', id, 'mac', mac, 'seed', seed, 'exp', tostring(exp), 'rs', tostring(rs),
                'n', sends, 'w', wrong, 'mid', mid, 'cc', ARGV[4], 'px', ARGV[5]}
if live then
  for _, f in ipairs(RECORD) do
    fields[#fields + 1] = 'p_' .. f
    fields[#fields + 1] = r[f]
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], at_ms(exp + ttl))
local out = {'OK', id, seed, tostring(exp), tostring(rs), tostring(sends), tostring(wrong), mid,
             tostring(nb + #gates)}
for i = 1, nb do
  local c = counted[i]
  redis.call('DEL', KEYS[1 + i])
  redis.call('HSET', KEYS[1 + i], tostring(c[1]), c[2] + 1)
  redis.call('PEXPIREAT', KEYS[1 + i], at_ms((c[1] + 1) * c[3]))
  out[#out + 1] = tostring(c[1])
end
for _, pair in ipairs(gates) do
  local key, g = pair[1], pair[2]
  for f, _ in pairs(g) do
    local kind, n = string.match(f, '^([sa])(%d+)$')
    if kind ~= nil and tonumber(n) < gidx - 1 then redis.call('HDEL', key, f) end
  end
  redis.call('HINCRBY', key, 's' .. gidx, 1)
  local blocked = tonumber(g['until'] or '0')
  redis.call('PEXPIREAT', key, at_ms(math.max((gidx + 2) * gw, blocked + gw)))
  out[#out + 1] = 's' .. gidx
end
for _, m in ipairs(monitored) do out[#out + 1] = m end
return out
"""

CHECK = _COMMON + """
local t = now()
local r = hash(KEYS[1])
if r['id'] == nil then return {'not_found', '0', '', ''} end
if tonumber(r['exp']) <= t then return {'expired', '0', r['id'], r['mid']} end
local w, max_checks = tonumber(r['w']), tonumber(ARGV[2])
if w >= max_checks then return {'locked', '0', r['id'], r['mid']} end
if redis.sha1hex(ARGV[1] .. r['id']) == r['mac'] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] ~= '' then
    local gidx = math.floor(t / tonumber(ARGV[3]))
    for k = 2, #KEYS do
      if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('HINCRBY', KEYS[k], 'a' .. gidx, 1) end
    end
  end
  return {'approved', '0', r['id'], r['mid']}
end
redis.call('HINCRBY', KEYS[1], 'w', 1)
return {'wrong_code', tostring(math.max(0, max_checks - w - 1)), r['id'], r['mid']}
"""

RECORD_MESSAGE_ID = """
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'mid', ARGV[2])
end
return 1
"""

WITHDRAW = _COMMON + """
local r = hash(KEYS[1])
if r['id'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if r['p_id'] ~= nil then
    local fields = {}
    for _, f in ipairs(RECORD) do
      fields[#fields + 1] = f
      fields[#fields + 1] = r['p_' .. f]
    end
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('HSET', KEYS[1], 'w', math.max(tonumber(r['w']), tonumber(r['p_w'])))
    redis.call('PEXPIREAT', KEYS[1], at_ms(tonumber(r['p_exp']) + tonumber(ARGV[2])))
  end
end
for i = 2, #KEYS do
  local f = ARGV[i + 1]
  local c = tonumber(redis.call('HGET', KEYS[i], f) or '0')
  if c > 0 then redis.call('HINCRBY', KEYS[i], f, -1) end
end
return 1
"""


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class RedisStore:
    """Challenges and limits in Redis, shared by every host (``pip install 'globesms[redis]'``).

    Give a URL (``redis://host:port/db``, ``rediss://`` for TLS) or ready clients (``client``, a
    ``redis.Redis``; ``async_client``, a ``redis.asyncio.Redis``). ``prefix`` starts every key;
    ``timeout`` bounds connecting and each reply (seconds).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: aioredis.Redis | None = None,
        prefix: str = "globesms:verify:",
        timeout: float = 0.5,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("RedisStore needs a url or a client")
        self._url = url
        self.prefix = prefix
        self._tag = f"{prefix}{{v}}:"
        self.timeout = timeout
        self._client = client
        self._fixed_async = _Async(async_client) if async_client is not None else None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Async] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[asyncio.AbstractEventLoop, _Async] | None = None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        where = masked_url(self._url) if self._url else "client"
        return f"RedisStore({where!r}, prefix={self.prefix!r})"

    # -- clients and errors ----------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout,
                "decode_responses": True}

    def _sync(self) -> redis.Redis:
        if self._client is None:
            if self._url is None:
                raise ValueError("this RedisStore has only an async client; use the _async "
                                 "methods or give client= too")
            self._client = redis.Redis.from_url(
                self._url, retry=redis.retry.Retry(NoBackoff(), 0), **self._options()
            )
        return self._client

    def _aio(self) -> _Async | None:
        """This event loop's async client and its scripts (clients are bound to one loop)."""
        if self._fixed_async is not None:
            return self._fixed_async
        if self._url is None:
            return None
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        entry = self._async.get(loop)
        if entry is None:
            from redis.asyncio.retry import Retry as AsyncRetry

            entry = self._async[loop] = _Async(aioredis.Redis.from_url(
                self._url, retry=AsyncRetry(NoBackoff(), 0), **self._options()
            ))
        self._last = (loop, entry)
        return entry

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"the Redis verification store cannot be used ({type(exc).__name__}); nothing was "
            "sent or approved",
            code="StoreUnavailable",
        )

    def key(self, logical: str) -> str:
        """The Redis key of a logical key: prefix, the shared hash tag, the logical name."""
        return self._tag + logical

    def _run(self, name: str, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self._sync()
        registered = self._scripts.get(name)
        if registered is None:
            registered = self._scripts[name] = client.register_script(script)
        try:
            return _text(registered(keys=[self._tag + k for k in keys], args=args))
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def _run_async(self, name: str, script: str, keys: Sequence[str],
                         args: Sequence[Any]) -> Any:
        entry = self._aio()
        if entry is None:
            return await asyncio.to_thread(self._run, name, script, keys, args)
        registered = entry.scripts.get(name)
        if registered is None:
            registered = entry.scripts[name] = entry.client.register_script(script)
        try:
            return _text(await registered(keys=[self._tag + k for k in keys], args=args))
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    # -- the protocol ----------------------------------------------------------------------------

    def start(self, request: StartRequest) -> Reservation | Refusal:
        return _reservation(request, self._run("start", START, *_start_call(request)))

    async def start_async(self, request: StartRequest) -> Reservation | Refusal:
        reply = await self._run_async("start", START, *_start_call(request))
        return _reservation(request, reply)

    def record_message_id(self, key: str, challenge_id: str, message_id: str) -> None:
        self._run("mid", RECORD_MESSAGE_ID, [key], [challenge_id, message_id])

    async def record_message_id_async(self, key: str, challenge_id: str,
                                      message_id: str) -> None:
        await self._run_async("mid", RECORD_MESSAGE_ID, [key], [challenge_id, message_id])

    def withdraw(self, key: str, reservation: Reservation) -> None:
        self._run("withdraw", WITHDRAW, *_withdraw_call(key, reservation))

    async def withdraw_async(self, key: str, reservation: Reservation) -> None:
        await self._run_async("withdraw", WITHDRAW, *_withdraw_call(key, reservation))

    def check(self, request: CheckRequest) -> CheckOutcome:
        return _outcome(self._run("check", CHECK, *_check_call(request)))

    async def check_async(self, request: CheckRequest) -> CheckOutcome:
        return _outcome(await self._run_async("check", CHECK, *_check_call(request)))

    def close(self) -> None:
        """Close the connections of clients this store built."""
        if self._url is not None and self._client is not None:
            self._client.close()
            self._client = None
            self._scripts.clear()

    async def aclose(self) -> None:
        mine = self._async.get(asyncio.get_running_loop())
        if mine is not None:  # clients of other (finished) loops went with their loop
            await mine.client.aclose()
        self._last = None
        self._async = weakref.WeakKeyDictionary()
        self.close()


class _Async:
    """An asyncio client and the scripts registered on it."""

    __slots__ = ("client", "scripts")

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.scripts: dict[str, Any] = {}


def _text(reply: Any) -> Any:
    """Replies as str, also from a client built without ``decode_responses``."""
    if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
        return [item.decode() if isinstance(item, bytes) else item for item in reply]
    return reply


def _start_call(request: StartRequest) -> tuple[list[str], list[Any]]:
    new, limits = request.new, request.limits
    keys = [request.challenge_key, *(b.key for b in request.budgets), *request.gates]
    args: list[Any] = [new.id, new.mac, new.seed, new.country, new.prefix, limits.ttl,
                       limits.max_checks, -1 if limits.cooldown is None else limits.cooldown,
                       repr(limits.growth), "1" if limits.same else "0", len(request.budgets)]
    for budget in request.budgets:
        args += [budget.code, budget.limit, budget.window]
    rule = request.gate_rule
    if rule is None:
        args.append("0")
    else:
        args += ["1", rule.window, rule.min_starts, repr(rule.min_ratio), rule.block,
                 rule.block_max, "1" if rule.monitor else "0"]
    return keys, args


def _reservation(request: StartRequest, reply: list[str]) -> Reservation | Refusal:
    if reply[0] == "R":
        return Refusal(reply[1], float(reply[2]))
    _, cid, seed, exp, rs, sends, wrong, mid, nmarks = reply[:9]
    count = int(nmarks)
    names = reply[9:9 + count]
    counters = [b.key for b in request.budgets] + list(request.gates)
    record = Record(id=cid, mac="", seed=seed, expires=float(exp), resend_at=float(rs),
                    sends=int(sends), wrong=int(wrong), message_id=mid,
                    country=request.new.country, prefix=request.new.prefix)
    monitored = tuple(Refusal(LOW_CONVERSION, float(m)) for m in reply[9 + count:])
    marks = tuple(zip(counters, names, strict=True))
    return Reservation(record, request.limits.ttl, marks, monitored)


def _withdraw_call(key: str, reservation: Reservation) -> tuple[list[str], list[Any]]:
    keys = [key, *(counter for counter, _ in reservation.marks)]
    args = [reservation.record.id, reservation.ttl, *(name for _, name in reservation.marks)]
    return keys, args


def _check_call(request: CheckRequest) -> tuple[list[str], list[Any]]:
    keys = [request.challenge_key, *request.gates]
    window = "" if request.gate_window is None else request.gate_window
    return keys, [request.candidate, request.max_checks, window]


def _outcome(reply: list[str]) -> CheckOutcome:
    status, left, cid, mid = reply
    return CheckOutcome(status, int(left), cid, mid)
