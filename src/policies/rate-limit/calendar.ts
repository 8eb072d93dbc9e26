/**
 * Calendar periods (a day, a month) in a time zone, as instants: quotas reset at local
 * midnight, not at midnight UTC. Daylight-saving days are 23 or 25 hours long.
 */

/** A period `[start, end)` in ms since the epoch. */
export interface PeriodBounds {
  start: number;
  end: number;
}

/** True when `zone` is an IANA time zone name this runtime knows (e.g. `Europe/Berlin`). */
export function isKnownTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the period containing an instant. The bounds are computed once per period:
 * `boundsAt` costs a comparison until the period ends.
 */
export class CalendarPeriod {
  readonly #format: Intl.DateTimeFormat;
  #cached: PeriodBounds = { start: 0, end: 0 };

  constructor(
    readonly unit: "day" | "month",
    readonly timeZone: string,
  ) {
    this.#format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
  }

  boundsAt(now: number): PeriodBounds {
    const cached = this.#cached;
    if (now >= cached.start && now < cached.end) return cached;
    const local = this.#localParts(now);
    const start = this.unit === "day" ? this.#localMidnight(local.year, local.month, local.day) : this.#localMidnight(local.year, local.month, 1);
    const end = this.unit === "day" ? this.#localMidnight(local.year, local.month, local.day + 1) : this.#localMidnight(local.year, local.month + 1, 1);
    this.#cached = { start, end };
    return this.#cached;
  }

  /** Wall-clock parts in the zone (month 1-12). */
  #localParts(instant: number) {
    const parts: Record<string, number> = {};
    for (const part of this.#format.formatToParts(instant)) if (part.type !== "literal") parts[part.type] = Number(part.value);
    return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second! };
  }

  /** The zone's offset from UTC at an instant, in ms (Berlin in winter: +3,600,000). */
  #offset(instant: number): number {
    const p = this.#localParts(instant);
    const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    return wall - (instant - (((instant % 1000) + 1000) % 1000));
  }

  /** The instant of 00:00 local time on a date (day and month may overflow, as in Date.UTC). */
  #localMidnight(year: number, month: number, day: number): number {
    const wall = Date.UTC(year, month - 1, day);
    let instant = wall - this.#offset(wall);
    // Once more with the offset at the first guess: right across a DST change.
    instant = wall - this.#offset(instant);
    return instant;
  }
}
