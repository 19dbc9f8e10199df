"""A realistic, reproducible event workload: users in sessions walking a shop funnel, sensor devices,
application logs, plus deliberate disorder (out-of-order, late, duplicate and malformed records).

Everything is drawn from one `random.Random(seed)`, and event times come from a simulated clock, so a
seed and an `end_ms` give the same records byte for byte.

Delivery order and lateness, with W the 1-minute window, L the allowed lateness and O the bounded
out-of-orderness of the streaming job (`stage().flink`), and "stream time" = the largest event time
of the valid events delivered so far:
- on-time events trail stream time by less than `max_delay_s` (default L/2), so their window is still
  open (a window closes at window end + L, and watermark = stream time - O);
- late events are dated `late_gap_ms` = W + L + O + `late_margin_s` (default 5 min) or more behind
  stream time at their position, and are only made once stream time has run that far past the start,
  so a consumer sees them as too late unless its watermark lags stream time by more than the margin
  (e.g. one shard read minutes behind the others);
- duplicates re-send the very bytes (and partition key) of a recently delivered on-time event, while it
  still trails stream time by less than `max_delay_s`, so a duplicate is never late where its original
  was not: the only duplicates are of on-time valid events, and their count is in the manifest;
- malformed records cover every `BadRowReason`, in turn. `oversize` (> 1 MiB) cannot exist on a
  Kinesis stream: PutRecords refuses the call, and a KPL aggregate is itself capped at 1 MiB, so no
  consumer ever sees one. They are generated anyway, the writer refuses them before sending, and the
  manifest counts them under `producer_rejected`, not under the bad rows the enricher will report.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from pipeline.config import stage
from pipeline.contract import (
    BadRowReason,
    DecodeError,
    WireFormat,
    contract,
    decode,
    encode,
)
from pipeline.contract.codec import GLUE_HEADER_VERSION, MAX_RECORD_BYTES, SINGLE_OBJECT_MAGIC
from pipeline.produce.avro_writer import Encoder, compile_schema, wire_prefix

WINDOW_MS = 60_000
DAY_MS = 86_400_000


class PartitionKeyStrategy(StrEnum):
    USER = "user"  # user_id, else session, device, event_id
    SESSION = "session"  # session_id, else device, event_id
    DEVICE = "device"  # sensor device_id, else session, event_id
    RANDOM = "random"  # the event_id: uniform over shards


class RecordKind(StrEnum):
    EVENT = "event"  # valid, on time
    LATE = "late"  # valid, beyond the allowed lateness
    DUPLICATE = "duplicate"  # the same bytes as an earlier on-time EVENT
    BAD = "bad"  # malformed: `reason` says how


class Record(NamedTuple):
    partition_key: str
    data: bytes
    kind: RecordKind
    event: dict[str, Any] | None  # the event as written (writer schema version); None for BAD
    reason: BadRowReason | None  # for BAD


# Enum members on the hot path, looked up once: `RecordKind.EVENT` costs 0.1-0.2 us a time (the enum
# metaclass's attribute lookup), `_EVENT` a global load.
_EVENT = RecordKind.EVENT
_JSON, _AVRO_GLUE = WireFormat.JSON, WireFormat.AVRO_GLUE
# The codec's `encode_json` is `orjson.dumps` behind a Python function: calling orjson directly saves
# that frame per JSON event (the same bytes: tests/unit/produce/test_avro_writer.py).
_encode_json: Callable[[dict[str, Any]], bytes] = orjson.dumps

# `Record(...)` runs the Python `__new__` namedtuple generates; the tuple constructor it ends in is one
# C call: on the hot path, `_new_record(Record, (fields...))`.
_new_record: Callable[[type[Record], tuple[str, bytes, RecordKind, dict[str, Any] | None, None]], Record] = (
    tuple.__new__
)


@dataclass(frozen=True)
class WorkloadConfig:
    events: int = 10_000  # user records to produce: valid, late, duplicates and malformed together
    seed: int = 42
    end_ms: int | None = None  # the event-time span ends here; default: now, when the workload is made
    span_s: float | None = None  # event-time span; default max(900 s, events / 50 per s)
    out_of_order: float = 0.05  # share of events delivered up to `max_delay_s` after later ones
    max_delay_s: float | None = None  # default: half the allowed lateness
    late: float = 0.002
    late_margin_s: float = 300.0
    late_spread_s: float = 120.0  # late events are up to this much further behind
    duplicates: float = 0.01
    bad: float = 0.005
    partition_key: PartitionKeyStrategy = PartitionKeyStrategy.USER
    wire_formats: dict[str, float] = field(
        default_factory=lambda: {"json": 0.5, "avro-glue": 0.3, "avro-single-object": 0.2}
    )
    mix: dict[str, float] = field(default_factory=lambda: {"clickstream": 0.7, "sensor": 0.2, "app_log": 0.1})
    users: int | None = None  # default max(100, events / 20)
    devices: int = 40
    concurrent_sessions: int = 200
    allowed_lateness_s: int | None = None  # default: stage().flink
    out_of_orderness_s: int | None = None  # default: stage().flink

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- realistic reference data ------------------------------------------------------------------------

_BROWSERS: list[tuple[str, str, float]] = [  # user agent, source, weight
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "web",
        24,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "web",
        9,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "web",
        7,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "web", 5),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "web", 1),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "web",
        6,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "web",
        16,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "web",
        10,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "web",
        4,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "web",
        3,
    ),
    ("ShopApp/5.12.0 (iPhone15,2; iOS 18.1; Scale/3.00)", "ios", 8),
    ("ShopApp/5.11.3 (Linux; Android 14; Pixel 7 Build/AP2A.240905.003)", "android", 7),
]
_BOTS: list[tuple[str, str]] = [  # user agent, IPv4 /16 the crawler really comes from
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "66.249"),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "66.249",
    ),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "157.55"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "54.36"),
]
_BOT_SHARE = 0.04
_IPV6_SHARE = 0.3
_PUBLIC_V4_FIRST_OCTETS = (
    23,
    31,
    37,
    46,
    62,
    77,
    78,
    81,
    82,
    86,
    88,
    90,
    91,
    93,
    95,
    109,
    151,
    176,
    178,
    185,
    188,
)
_PUBLIC_V6_PREFIXES = ("2a02:8108", "2a01:cb00", "2001:4860", "2600:1700", "2a00:23c5", "2003:e4")
_CURRENCIES = (("EUR", 45), ("USD", 35), ("GBP", 15), ("JPY", 5))
_CATEGORIES = (
    "shoes",
    "jackets",
    "shirts",
    "bags",
    "watches",
    "kitchen",
    "garden",
    "toys",
    "books",
    "audio",
    "phones",
    "laptops",
    "beauty",
    "sports",
    "lighting",
    "office",
)
_PRICES_MINOR = (
    299,
    499,
    799,
    999,
    1299,
    1499,
    1999,
    2499,
    2999,
    3999,
    4999,
    7999,
    9999,
    14999,
    24999,
    49999,
)
_COUPONS = ("WELCOME10", "BF26", "FREESHIP", "SPRING15")
_SENSOR_METRICS = (  # metric, unit, base, spread
    ("temperature", "celsius", 21.0, 6.0),
    ("humidity", "percent", 45.0, 20.0),
    ("pressure", "hPa", 1013.0, 12.0),
    ("co2", "ppm", 600.0, 300.0),
)
_LOG_LEVELS = (("DEBUG", 15), ("INFO", 68), ("WARN", 11), ("ERROR", 5), ("FATAL", 1))
_LOG_SOURCES = (
    ("checkout", "checkout.payment.PaymentClient", "payment authorised for order {n} in {ms} ms"),
    ("checkout", "checkout.cart.CartService", "cart {n} recalculated, {k} items"),
    ("catalog", "catalog.search.QueryPlanner", "query planned in {ms} ms, {k} shards"),
    ("catalog", "catalog.index.Refresher", "index refresh took {ms} ms"),
    ("auth", "auth.session.TokenStore", "token refreshed for session {n}"),
    ("gateway", "gateway.http.AccessLog", "GET /api/v2/products/{n} 200 {ms}ms"),
    ("gateway", "gateway.http.RateLimiter", "client {n} throttled after {k} requests"),
)
# Conversion of the funnel, per session step.
_P_CLICK_AFTER_VIEW = 0.5
_P_VIEW_AFTER_VIEW = 0.35  # else the session ends
_P_ADD_TO_CART = 0.3  # of clicks on a product page
_P_END_AFTER_CLICK = 0.2
_P_CHECKOUT = 0.4  # of add-to-carts
_P_END_AFTER_CART = 0.15
_P_END_AFTER_PURCHASE = 0.7

_LOAD_TIME_RATE = 1 / 400  # page load times: 80 ms + exponential with a mean of 400 ms
_log = math.log
# `int(x)` of a non-negative float on the hot path: `math.floor` gives the same int for x >= 0 and
# costs 40 ns against 100 ns for calling the `int` type (4-5 times per event).
_floor = math.floor
# Weighted draws index tables with `_floor(random() * 1024.0)`: a float operand where an int would do
# gives the same float, and float-by-float arithmetic runs on the interpreter's fast path.

_VIEW, _CLICK, _CART, _PURCHASE = 0, 1, 2, 3
_SLOT_CLOCK, _SLOT_BAD, _SLOT_DUP, _SLOT_LATE = 0, 1, 2, 3


def _table(weights: list[tuple[Any, float]], size: int = 1024) -> list[Any]:
    """A lookup table for weighted draws with one random index (cheaper than random.choices)."""
    total = sum(w for _, w in weights)
    table: list[Any] = []
    acc = 0.0
    for item, w in weights:
        acc += w
        table.extend([item] * (round(acc / total * size) - len(table)))
    table.extend([weights[-1][0]] * (size - len(table)))
    return table


def _zipf_table(n: int, s: float = 1.1, size: int = 1 << 16) -> list[int]:
    return _table([(i, 1.0 / (i + 1) ** s) for i in range(n)], size)


class DiurnalClock:
    """Event times of the k-th of n in-order events over [start, end], denser in the evening (UTC):
    the inverse of the cumulative diurnal intensity, so k -> time is exact and monotone."""

    GRID = 2048

    def __init__(self, start_ms: int, end_ms: int, n: int, amplitude: float = 0.5, peak_hour: float = 19.0):
        self.start, self.n = start_ms, max(n, 1)
        self.step = (end_ms - start_ms) / self.GRID
        cum = [0.0]
        for i in range(self.GRID):
            hour = ((start_ms + (i + 0.5) * self.step) % DAY_MS) / 3_600_000
            cum.append(cum[-1] + 1 + amplitude * math.cos(2 * math.pi * (hour - peak_hour) / 24))
        self.cum = [c / cum[-1] for c in cum]

    def times(self) -> Iterator[int]:
        """The times of the events k = 0, 1, 2, ...: the k-th at the fraction (k + 0.5) / n of the
        cumulative intensity (from k = n on: the end of the span).

        A generator rather than a method taking k: the current grid cell (thousands of events each)
        stays in locals from one event to the next, and resuming costs less than a call.
        """
        # All in floats: the ints here (k + 0.5, n, the cell, the start in epoch millis) are below 2^53,
        # so exact as floats, and Python's int-float arithmetic converts them the same way; float-only
        # operations take the interpreter's fast path.
        cum, n, start, step, last = self.cum, float(self.n), float(self.start), self.step, self.GRID - 1
        cell, lo, hi = 0, cum[0], cum[1]
        width, base = (hi - lo) or 1.0, 0.0  # base: the cell as a float
        k_half = 0.5  # k + 0.5
        while True:
            u = k_half / n
            k_half += 1.0
            if hi < u:
                while cell < last and cum[cell + 1] < u:
                    cell += 1
                lo, hi, base = cum[cell], cum[cell + 1], float(cell)
                width = (hi - lo) or 1.0
            frac = (u - lo) / width
            yield _floor(start + (base + (frac if frac < 1.0 else 1.0)) * step)


_HEX3 = [f"{n:03x}" for n in range(4096)]


def _event_ids(prefix: str) -> Iterator[str]:
    """`prefix` + the 12 hex digits of 1, 2, 3, ...: formatting `f"{prefix}{n:012x}"` for each event
    took 0.3 us; this formats the upper 9 digits once per 4096 ids and appends the lower 3 from a table.
    Built from C iterators, so taking the next id runs no Python frame."""
    blocks = (  # the first block starts at 001: 1 is the first id
        map(operator.add, itertools.repeat(f"{prefix}{high:09x}"), _HEX3 if high else _HEX3[1:])
        for high in itertools.count()
    )
    return itertools.chain.from_iterable(blocks)


# Slots rather than a NamedTuple: Python 3.11 specialises reading a slot, not reading a NamedTuple
# field (a descriptor: 0.05 us a read, and a web event reads four).
@dataclass(slots=True)
class _User:
    user_id: str | None
    user_agent: str
    ip: str
    source: str
    currency: str


class _Session:
    __slots__ = ("cart", "id", "is_bot", "page", "state", "user")

    def __init__(self, session_id: str, user: _User, is_bot: bool) -> None:
        self.id, self.user, self.is_bot = session_id, user, is_bot
        self.state = _VIEW
        self.page = -1  # index into pages; -1 before the first view
        self.cart: list[tuple[str, int, int]] = []  # (product_id, quantity, unit_price_minor)


class Workload:
    """Iterate it for the records in delivery order. Every iteration restarts from the seed."""

    def __init__(self, config: WorkloadConfig) -> None:
        flink = stage().flink
        self.config = config
        self.allowed_lateness_ms = 1000 * (config.allowed_lateness_s or flink.allowed_lateness_s)
        self.out_of_orderness_ms = 1000 * (config.out_of_orderness_s or flink.out_of_orderness_s)
        self.max_delay_ms = int(1000 * (config.max_delay_s or self.allowed_lateness_ms / 2000))
        if self.max_delay_ms >= self.allowed_lateness_ms + self.out_of_orderness_ms:
            raise ValueError("max_delay_s must stay below the allowed lateness plus the out-of-orderness")
        self.late_gap_ms = WINDOW_MS + self.allowed_lateness_ms + self.out_of_orderness_ms
        self.late_gap_ms += int(config.late_margin_s * 1000)
        self.late_spread_ms = int(config.late_spread_s * 1000)
        now_ms = int(time.time() * 1000)
        self.end_ms = config.end_ms if config.end_ms is not None else now_ms
        if self.end_ms > now_ms + 60_000:
            raise ValueError(
                "end_ms is in the future: the enricher would reject valid events as future_event_time"
            )
        span_ms = int(1000 * (config.span_s or max(900.0, config.events / 50)))
        self.start_ms = self.end_ms - span_ms
        if config.late > 0 and span_ms < self.late_gap_ms + self.late_spread_ms + 2 * WINDOW_MS:
            raise ValueError(
                f"an event-time span of {span_ms / 1000:.0f} s is too short for late events "
                f"(they trail stream time by {self.late_gap_ms / 1000:.0f} s or more)"
            )
        for name in ("out_of_order", "late", "duplicates", "bad"):
            if not 0 <= getattr(config, name) < 1:
                raise ValueError(f"{name} must be a fraction in [0, 1)")
        if config.late + config.duplicates + config.bad >= 0.5:
            raise ValueError("late + duplicates + bad must stay under half of the records")

    # --- the stream -----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        g = _Generator(self)
        return g.run()


class _Generator:
    """One pass over the workload; all mutable state of a run lives here.

    Keep it at 30 attributes at most: beyond that Python 3.11 stops sharing the instance's key table,
    and every `self.x` on the hot path takes a slower lookup (two more attributes cost 1% of the bench).
    """

    def __init__(self, w: Workload) -> None:
        c = w.config
        self.w, self.c = w, c
        self.rng = rng = random.Random(c.seed)
        self.random = rng.random
        self.contract = contract()
        # event_id: a per-run UUIDv4 prefix and a counter: unique, reproducible, cheap.
        run = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        # `next(self.event_ids)` on the hot path, not a bound `__next__`: calling that method-wrapper costs
        # twice as much as the builtin `next`.
        self.event_ids = _event_ids(f"{run[:8]}-{run[8:12]}-{run[12:16]}-{run[16:20]}-")
        n_users = c.users or max(100, c.events // 20)
        self.users: list[_User | None] = [None] * n_users
        self.user_rank = _zipf_table(n_users, 0.9, 1 << 18)
        self.browsers = _table([((ua, src), wgt) for ua, src, wgt in _BROWSERS])
        self.currencies = _table(list(_CURRENCIES))
        self.n_products = 1500
        pages = ["/", "/search", "/cart", *(f"/c/{cat}" for cat in _CATEGORIES)]
        self.first_product_page = len(pages)
        pages += [f"/p/{i}" for i in range(self.n_products)]
        self.pages = pages
        self.titles = ["Home", "Search", "Cart", *(f"{cat.title()}" for cat in _CATEGORIES)]
        self.titles += [f"Product {i}" for i in range(self.n_products)]
        # Popularity rank -> page: the home page first, then a shuffled mix of categories and products.
        order = list(range(1, len(pages)))
        rng.shuffle(order)
        ranked = [0, *order]
        self.page_pick = list(map(ranked.__getitem__, _zipf_table(len(pages), 1.05)))  # 65536: in C
        self.prices = [rng.choice(_PRICES_MINOR) for _ in range(self.n_products)]
        self.sessions = [self._new_session() for _ in range(c.concurrent_sessions)]
        self.sensors = [
            (f"dev-{d}", metric, unit, base + rng.uniform(-spread, spread) / 3, spread)
            for d in range(c.devices)
            for metric, unit, base, spread in _SENSOR_METRICS[: 2 + d % 3]
        ]
        self.sensor_cursor = 0
        self.levels = _table(list(_LOG_LEVELS))
        # The event maker itself in the table: one call, no comparing of names per event.
        makers = {"sensor": self._sensor, "app_log": self._app_log}
        self.mix: list[Callable[[int], dict[str, Any]]] = _table(
            [(makers.get(kind, self._click_stream), share) for kind, share in c.mix.items()]
        )
        self.formats = _table([(WireFormat(k), v) for k, v in c.wire_formats.items()])
        self.versions = {
            t: _table([(v, float(v)) for v in chain], 64) for t, chain in self.contract.versions.items()
        }
        # Avro bodies from compiled encoders (see avro_writer: the codec's bytes, faster), behind the
        # codec's headers: event_type -> version -> (Glue prefix, single-object prefix, body encoder).
        self.avro: dict[str, dict[int, tuple[bytes, bytes, Encoder]]] = {
            event_type: {
                sv.version: (
                    wire_prefix(sv, WireFormat.AVRO_GLUE),
                    wire_prefix(sv, WireFormat.AVRO_SINGLE_OBJECT),
                    compile_schema(sv.definition),
                )
                for sv in chain.values()
            }
            for event_type, chain in self.contract.versions.items()
        }
        self.key_of = _PARTITION_KEYS[c.partition_key]
        self.bad_reasons = list(BadRowReason)
        rng.shuffle(self.bad_reasons)
        self.bad_turn = 0
        self.oversize_row: bytes | None = None
        # Stream state.
        self.stream_time = -1  # largest event time of valid on-time events delivered so far
        self.recent: deque[Record] = deque(maxlen=64)

    # --- slots and delivery ---------------------------------------------------------------------------

    def _plan_slots(self) -> tuple[bytearray, int]:
        c, rng = self.c, self.rng
        n = c.events
        slots = bytearray(n)
        counts = ((_SLOT_BAD, c.bad), (_SLOT_DUP, c.duplicates), (_SLOT_LATE, c.late))
        wanted = [(kind, round(n * share)) for kind, share in counts]
        positions = rng.sample(range(1, n), sum(k for _, k in wanted)) if n > 1 else []
        at = 0
        for kind, k in wanted:
            for p in positions[at : at + k]:
                slots[p] = kind
            at += k
        return slots, n - len(positions)

    def run(self) -> Iterator[Record]:
        w, rng = self.w, self.rng
        slots, n_clock = self._plan_slots()
        # Clock times drawn one ahead: a malformed record is dated with the time the next valid event gets.
        times = DiurnalClock(w.start_ms, w.end_ms, n_clock).times()
        t_next = next(times)
        delayed: list[tuple[int, int, Record]] = []  # (delivery time, tie-break, record)
        due: float = math.inf  # delivery time of delayed[0]: one comparison per event, not a heap peek
        out_of_order, max_delay = self.c.out_of_order, w.max_delay_ms
        mean_delay = max_delay / 4
        late_from = w.start_ms + w.late_gap_ms + w.late_spread_ms
        pending_dups = pending_late = 0
        recent = self.recent.append
        random, mix, formats, avro, key_of = self.random, self.mix, self.formats, self.avro, self.key_of
        k = 0
        for slot in slots:
            if slot == _SLOT_CLOCK:
                t, t_next = t_next, next(times)
                k += 1
                while due <= t:
                    yield self._delivered(heapq.heappop(delayed)[2])
                    due = delayed[0][0] if delayed else math.inf
                # `self._event(t)`, inlined: the hot path, once per valid event
                event = mix[_floor(random() * 1024.0)](t)
                wire_format = formats[_floor(random() * 1024.0)]
                if wire_format is _JSON:
                    data = _encode_json(event)
                else:
                    glue, single_object, body = avro[event["event_type"]][event["schema_version"]]
                    data = body(event, glue if wire_format is _AVRO_GLUE else single_object)
                record = _new_record(Record, (key_of(event), data, _EVENT, event, None))
                if out_of_order and random() < out_of_order:
                    delay = 1 + _floor(min(rng.expovariate(1 / mean_delay), max_delay - 1))
                    heapq.heappush(delayed, (t + delay, k, record))
                    due = delayed[0][0]
                else:  # in order: t is the newest event time yet (`_delivered`, inlined: the hot path)
                    self.stream_time = t
                    recent(record)
                    yield record
            elif slot == _SLOT_BAD:
                yield self._bad(t_next)
            elif slot == _SLOT_DUP:
                pending_dups += 1
            else:
                pending_late += 1
            while pending_dups and (dup := self._duplicate()) is not None:
                pending_dups -= 1
                yield dup
            while pending_late and self.stream_time >= late_from:
                pending_late -= 1
                yield self._late()
        while delayed:
            yield self._delivered(heapq.heappop(delayed)[2])
        while pending_dups and (dup := self._duplicate()) is not None:
            pending_dups -= 1
            yield dup
        while pending_late and self.stream_time >= late_from:
            pending_late -= 1
            yield self._late()

    def _delivered(self, record: Record) -> Record:
        t = record.event["event_time"]  # type: ignore[index]
        if t > self.stream_time:
            self.stream_time = t
        self.recent.append(record)
        return record

    def _duplicate(self) -> Record | None:
        """The same bytes as a recent on-time event still trailing stream time by < max_delay."""
        if not self.recent:
            return None
        floor = self.stream_time - self.w.max_delay_ms
        candidate = self.recent[int(self.rng.random() * len(self.recent))]
        if candidate.event["event_time"] <= floor:  # type: ignore[index]
            candidate = self.recent[-1]
            if candidate.event["event_time"] <= floor:  # type: ignore[index]
                return None
        return Record(candidate.partition_key, candidate.data, RecordKind.DUPLICATE, candidate.event, None)

    def _late(self) -> Record:
        w = self.w
        t = self.stream_time - w.late_gap_ms - int(self.rng.random() * w.late_spread_ms)
        record = self._event(t)
        return record._replace(kind=RecordKind.LATE)

    # --- valid events ---------------------------------------------------------------------------------
    # Each event maker writes its whole event in one dict literal: the envelope in contract field order
    # (event_id, event_type, schema_version, event_time, source, user_id, session_id, user_agent, ip),
    # then the payload (JSON keeps that order). A shared envelope helper cost a call and a dict
    # insertion per event; a per-session envelope dict unpacked with `**` cost 1,200 instructions per
    # event (2.6%: the literal's dict grows and resizes). Draws stay in the order the seed reproduces: a maker that draws before its
    # schema version (a page, a quantity) does so first, and the rest after.

    def _event(self, t: int) -> Record:
        random = self.random
        event = self.mix[_floor(random() * 1024.0)](t)
        # `_encode`, inlined: one call less per event on the hot path
        wire_format = self.formats[_floor(random() * 1024.0)]
        if wire_format is _JSON:
            data = _encode_json(event)
        else:
            glue, single_object, body = self.avro[event["event_type"]][event["schema_version"]]
            data = body(event, glue if wire_format is _AVRO_GLUE else single_object)
        return _new_record(Record, (self.key_of(event), data, _EVENT, event, None))

    def _encode(self, event: dict[str, Any]) -> bytes:
        wire_format = self.formats[int(self.random() * 1024)]
        if wire_format is _JSON:
            return _encode_json(event)
        glue, single_object, body = self.avro[event["event_type"]][event["schema_version"]]
        return body(event, glue if wire_format is _AVRO_GLUE else single_object)

    def _user(self) -> _User:
        i = self.user_rank[self.rng.getrandbits(18)]
        user = self.users[i]
        if user is None:
            rng = self.rng
            ua, source = self.browsers[rng.getrandbits(10)]
            user = _User(f"u-{i}", ua, self._ip(), source, self.currencies[rng.getrandbits(10)])
            self.users[i] = user
        return user

    def _ip(self) -> str:
        rng = self.rng
        if rng.random() < _IPV6_SHARE:
            prefix = _PUBLIC_V6_PREFIXES[rng.getrandbits(16) % len(_PUBLIC_V6_PREFIXES)]
            return f"{prefix}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        first = _PUBLIC_V4_FIRST_OCTETS[rng.getrandbits(16) % len(_PUBLIC_V4_FIRST_OCTETS)]
        return f"{first}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{1 + rng.getrandbits(7)}"

    def _new_session(self) -> _Session:
        rng = self.rng
        sid = f"s-{rng.getrandbits(64):016x}"
        if rng.random() < _BOT_SHARE:
            ua, net = _BOTS[rng.getrandbits(8) % len(_BOTS)]
            ip = f"{net}.{rng.getrandbits(8)}.{1 + rng.getrandbits(7)}"
            return _Session(sid, _User(None, ua, ip, "web", "USD"), True)
        return _Session(sid, self._user(), False)

    def _click_stream(self, t: int) -> dict[str, Any]:
        """The next step of a random live session: view -> click -> add to cart -> purchase."""
        rng = self.rng
        slot = rng.getrandbits(16) % len(self.sessions)
        s = self.sessions[slot]
        state = s.state
        if state == _VIEW or s.page < 0:
            event = self._page_view(t, s)
            r = rng.random()
            if s.is_bot:
                s.state = _VIEW if r < 0.9 else -1
            else:
                s.state = (
                    _CLICK
                    if r < _P_CLICK_AFTER_VIEW
                    else _VIEW
                    if r < _P_CLICK_AFTER_VIEW + _P_VIEW_AFTER_VIEW
                    else -1
                )
        elif state == _CLICK:
            on_product = s.page >= self.first_product_page
            adds = on_product and rng.random() < _P_ADD_TO_CART
            event = self._click(t, s, "add-to-cart" if adds else None)
            s.state = _CART if adds else -1 if rng.random() < _P_END_AFTER_CLICK else _VIEW
        elif state == _CART:
            event = self._add_to_cart(t, s)
            r = rng.random()
            s.state = _PURCHASE if r < _P_CHECKOUT else -1 if r < _P_CHECKOUT + _P_END_AFTER_CART else _VIEW
        else:
            event = self._purchase(t, s)
            s.cart = []
            s.state = -1 if rng.random() < _P_END_AFTER_PURCHASE else _VIEW
        if s.state == -1:
            self.sessions[slot] = self._new_session()
        return event

    def _page_view(self, t: int, s: _Session) -> dict[str, Any]:
        rng, user = self.rng, s.user
        previous = s.page
        page = self.page_pick[rng.getrandbits(16)]
        s.page = page
        event_id, version = next(self.event_ids), self.versions["page_view"][_floor(self.random() * 64.0)]
        referrer = (
            self.pages[previous]
            if previous >= 0
            else "https://www.google.com/"
            if rng.random() < 0.4
            else None
        )
        payload: dict[str, Any] = {"url": self.pages[page], "referrer": referrer, "title": self.titles[page]}
        if version >= 2:
            # `rng.expovariate(1 / 400)`, inlined (the very same arithmetic, one call less per view)
            payload["load_time_ms"] = (
                80 + _floor(-_log(1.0 - rng.random()) / _LOAD_TIME_RATE) if rng.random() < 0.95 else None
            )
        return {
            "event_id": event_id,
            "event_type": "page_view",
            "schema_version": version,
            "event_time": t,
            "source": user.source,
            "user_id": user.user_id,
            "session_id": s.id,
            "user_agent": user.user_agent,
            "ip": user.ip,
            "payload": payload,
        }

    def _click(self, t: int, s: _Session, element: str | None) -> dict[str, Any]:
        rng, user = self.rng, s.user
        event_id, version = next(self.event_ids), self.versions["click"][_floor(self.random() * 64.0)]
        if element is None:
            element = ("nav-link", "search-box", "banner", "filter", "image-zoom", "related-item")[
                rng.getrandbits(8) % 6
            ]
        return {
            "event_id": event_id,
            "event_type": "click",
            "schema_version": version,
            "event_time": t,
            "source": user.source,
            "user_id": user.user_id,
            "session_id": s.id,
            "user_agent": user.user_agent,
            "ip": user.ip,
            "payload": {
                "url": self.pages[s.page],
                "element_id": element,
                "x": rng.getrandbits(10) + 20,
                "y": rng.getrandbits(9) + 60,
            },
        }

    def _add_to_cart(self, t: int, s: _Session) -> dict[str, Any]:
        rng, user = self.rng, s.user
        product = s.page - self.first_product_page
        quantity = 1 + (rng.getrandbits(8) % 3 == 0) + (rng.getrandbits(8) % 9 == 0)
        price = self._price(product, user.currency)
        s.cart.append((f"sku-{product}", quantity, price))
        event_id, version = next(self.event_ids), self.versions["add_to_cart"][_floor(self.random() * 64.0)]
        return {
            "event_id": event_id,
            "event_type": "add_to_cart",
            "schema_version": version,
            "event_time": t,
            "source": user.source,
            "user_id": user.user_id,
            "session_id": s.id,
            "user_agent": user.user_agent,
            "ip": user.ip,
            "payload": {
                "product_id": f"sku-{product}",
                "quantity": quantity,
                "unit_price_minor": price,
                "currency": user.currency,
            },
        }

    def _price(self, product: int, currency: str) -> int:
        price = self.prices[product]
        return (
            price * 160 // 100 if currency == "JPY" else price
        )  # yen have no minor unit: about 1.6 per cent

    def _purchase(self, t: int, s: _Session) -> dict[str, Any]:
        rng, user = self.rng, s.user
        event_id, version = next(self.event_ids), self.versions["purchase"][_floor(self.random() * 64.0)]
        items = sum(q for _, q, _ in s.cart)
        payload: dict[str, Any] = {
            "order_id": f"o-{rng.getrandbits(48):012x}",
            "amount_minor": sum(q * p for _, q, p in s.cart),
            "currency": user.currency,
        }
        payload["items" if version < 3 else "item_count"] = items
        if version >= 2:
            payload["coupon_code"] = (
                _COUPONS[rng.getrandbits(8) % len(_COUPONS)] if rng.random() < 0.1 else None
            )
        return {
            "event_id": event_id,
            "event_type": "purchase",
            "schema_version": version,
            "event_time": t,
            "source": user.source,
            "user_id": user.user_id,
            "session_id": s.id,
            "user_agent": user.user_agent,
            "ip": user.ip,
            "payload": payload,
        }

    def _sensor(self, t: int) -> dict[str, Any]:
        """Devices report in turn, so each (device, metric) reads at a regular pace."""
        rng = self.rng
        device, metric, unit, base, spread = self.sensors[self.sensor_cursor]
        self.sensor_cursor = (self.sensor_cursor + 1) % len(self.sensors)
        event_id, version = (
            next(self.event_ids),
            self.versions["sensor_reading"][_floor(self.random() * 64.0)],
        )
        # Sixteenths are exact in Avro float (v1) and double alike, so min/max/sum are exact everywhere.
        value = round((base + (rng.random() - 0.5) * spread) * 16) / 16
        payload: dict[str, Any] = {"device_id": device, "metric": metric, "value": value}
        if version >= 2:
            payload["unit"] = unit
        return {
            "event_id": event_id,
            "event_type": "sensor_reading",
            "schema_version": version,
            "event_time": t,
            "source": "iot",
            "user_id": None,
            "session_id": None,
            "user_agent": None,
            "ip": None,
            "payload": payload,
        }

    def _app_log(self, t: int) -> dict[str, Any]:
        rng = self.rng
        service, logger, template = _LOG_SOURCES[rng.getrandbits(8) % len(_LOG_SOURCES)]
        event_id, version = next(self.event_ids), self.versions["app_log"][_floor(self.random() * 64.0)]
        message = template.format(n=rng.getrandbits(20), ms=rng.getrandbits(9), k=rng.getrandbits(4))
        return {
            "event_id": event_id,
            "event_type": "app_log",
            "schema_version": version,
            "event_time": t,
            "source": "backend",
            "user_id": None,
            "session_id": None,
            "user_agent": None,
            "ip": None,
            "payload": {
                "level": self.levels[rng.getrandbits(10)],
                "service": service,
                "logger": logger,
                "message": message,
            },
        }

    # --- malformed records ----------------------------------------------------------------------------

    def _bad(self, t: int) -> Record:
        """The next bad-row reason in turn; checked against the codec so the manifest cannot lie."""
        reason = self.bad_reasons[self.bad_turn % len(self.bad_reasons)]
        self.bad_turn += 1
        variant = self.bad_turn // len(self.bad_reasons)
        data = _BAD_MAKERS[reason](self, t, variant)
        if self.bad_turn <= _CHECKED_BAD_ROWS:
            self._check_bad(reason, data)
        return Record(f"bad-{self.rng.getrandbits(64):016x}", data, RecordKind.BAD, None, reason)

    def _valid_event(self, t: int) -> dict[str, Any]:
        return self._app_log(t) if self.rng.random() < 0.5 else self._sensor(t)

    def _check_bad(self, reason: BadRowReason, data: bytes) -> None:
        if reason is BadRowReason.OVERSIZE:
            if len(data) <= MAX_RECORD_BYTES:
                raise AssertionError("an oversize record must exceed the Kinesis record limit")
            return
        try:
            decoded = decode(data, self.contract)
        except DecodeError as exc:
            if exc.reason is not reason:
                raise AssertionError(f"a {reason} record decodes as {exc.reason}: {exc.detail}") from None
            return
        if (
            reason is not BadRowReason.FUTURE_EVENT_TIME
            or decoded.event["event_time"] < self.w.end_ms + DAY_MS
        ):
            raise AssertionError(f"a {reason} record decodes as a valid event")


# Bad rows checked against the codec as they are made: the first rounds of every reason, past the
# 12-round period of the makers' variants. A maker writes each variant the same way every round, so
# later rows add nothing to the check, and checking every row cost 2% of the producer's CPU (a
# decode per row); tests/unit/produce/test_workload.py decodes all of them.
_CHECKED_BAD_ROWS = 2 * 12 * len(BadRowReason)


def _bad_unparseable(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    if variant % 4 == 0:
        text = orjson.dumps(event)
        return text[: len(text) // 2]  # a truncated write
    if variant % 4 == 1:
        data = encode(event, WireFormat.AVRO_SINGLE_OBJECT)
        return data[: 10 + (len(data) - 10) // 2]
    if variant % 4 == 2:
        sv = g.contract.latest(event["event_type"])
        return bytes([GLUE_HEADER_VERSION, 5]) + sv.local_uuid.bytes + b"not zlib at all"
    return b"GET /favicon.ico HTTP/1.1\r\nHost: shop.example\r\n\r\n"


def _bad_unknown_event_type(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    event["event_type"] = ("video_play", "checkout_started", "PageView")[variant % 3]
    return orjson.dumps(event)


def _bad_unknown_schema_version(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    if variant % 3 == 0:
        event["schema_version"] = 99
        return orjson.dumps(event)
    body = encode(event, WireFormat.AVRO_SINGLE_OBJECT)[10:]
    if variant % 3 == 1:
        unknown = uuid.UUID(int=g.rng.getrandbits(128), version=4)  # a version from another registry
        return bytes([GLUE_HEADER_VERSION, 0]) + unknown.bytes + body
    return SINGLE_OBJECT_MAGIC + g.rng.getrandbits(64).to_bytes(8, "little") + body


def _bad_schema_violation(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    if variant % 3 == 0:
        event["event_time"] = str(event["event_time"])  # a string where a long belongs
    elif variant % 3 == 1:
        del event["payload"][next(iter(event["payload"]))]  # a required field missing
    else:
        event["schema_version"] = "1"
    return orjson.dumps(event)


def _bad_oversize(g: _Generator, t: int, variant: int) -> bytes:
    """An app log with a 1 MiB message: the run's first one, again each time (a producer retrying a
    record it cannot send). Making each anew cost about 1% of the producer's CPU and evicted its
    caches: a megabyte copied, and its fresh pages faulted in, per row. Nothing downstream sees them:
    the writer refuses them, and the manifest counts them. The app log is still drawn each time, so
    the records after it do not depend on this."""
    event = g._app_log(t)
    if g.oversize_row is None:
        event["payload"]["message"] = "stack trace " + "x" * MAX_RECORD_BYTES
        g.oversize_row = orjson.dumps(event)
    return g.oversize_row


def _bad_timestamp_out_of_range(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    # A seconds-for-millis mix-up (1970), or a year-2286 clock.
    event["event_time"] = t // 1000 if variant % 2 == 0 else 9_999_999_999_999
    return g._encode(event)


def _bad_future_event_time(g: _Generator, t: int, variant: int) -> bytes:
    event = g._valid_event(t)
    # A broken device clock days ahead: far beyond the enricher's tolerance however long the run takes.
    event["event_time"] = g.w.end_ms + 7 * DAY_MS + int(g.rng.random() * DAY_MS)
    return g._encode(event)


_BAD_MAKERS: dict[BadRowReason, Callable[[_Generator, int, int], bytes]] = {
    BadRowReason.UNPARSEABLE: _bad_unparseable,
    BadRowReason.UNKNOWN_EVENT_TYPE: _bad_unknown_event_type,
    BadRowReason.UNKNOWN_SCHEMA_VERSION: _bad_unknown_schema_version,
    BadRowReason.SCHEMA_VIOLATION: _bad_schema_violation,
    BadRowReason.OVERSIZE: _bad_oversize,
    BadRowReason.TIMESTAMP_OUT_OF_RANGE: _bad_timestamp_out_of_range,
    BadRowReason.FUTURE_EVENT_TIME: _bad_future_event_time,
}


# Partition keys of the generated events, whose id fields are all strings already (no `str()` call).
# A sensor reading's device is written out in each function rather than called: one call less per
# sensor and log event.


def _key_user(e: dict[str, Any]) -> str:
    return (
        e["user_id"]
        or e["session_id"]
        or (e["payload"].get("device_id") if e["event_type"] == "sensor_reading" else None)
        or e["event_id"]
    )


def _key_session(e: dict[str, Any]) -> str:
    return (
        e["session_id"]
        or (e["payload"].get("device_id") if e["event_type"] == "sensor_reading" else None)
        or e["event_id"]
    )


def _key_device(e: dict[str, Any]) -> str:
    return (
        (e["payload"].get("device_id") if e["event_type"] == "sensor_reading" else None)
        or e["session_id"]
        or e["event_id"]
    )


def _key_random(e: dict[str, Any]) -> str:
    return e["event_id"]


_PARTITION_KEYS: dict[PartitionKeyStrategy, Callable[[dict[str, Any]], str]] = {
    PartitionKeyStrategy.USER: _key_user,
    PartitionKeyStrategy.SESSION: _key_session,
    PartitionKeyStrategy.DEVICE: _key_device,
    PartitionKeyStrategy.RANDOM: _key_random,
}
