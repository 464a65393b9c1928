#pragma once

// Bandwidth windows (issue 15): an upstream rate limit that depends on the time of day and the
// weekday, e.g. 2 MiB/s Monday to Friday 08:00-18:00 and the base rate (often unlimited)
// otherwise. A window holds from `start` (inclusive) to `end` (exclusive) on each of its days,
// in the machine's local time zone (localtime_r: TZ, else /etc/localtime); a window across
// midnight is written as two. The windows of one limit must not overlap, so at most one holds at
// any time; outside all of them the limit's base rate applies.
//
// scheduled_rate switches a rate_limiter (http_client.hpp) to the rate in effect: fetches that
// hold the limiter keep running and go on at the new rate from their next receive.
//
// Pure functions over values, except scheduled_rate::apply (the limiter's own mutex) and
// to_local_time (the time zone). Thread safety: scheduled_rate is immutable after construction
// apart from the limiter.

#include "lanrelay/upstream/http_client.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

struct rate_window {
  std::uint8_t days = 0x7f;  // bit 0 Monday ... bit 6 Sunday
  std::uint16_t start = 0;   // minutes after local midnight, 0..1439
  std::uint16_t end = 1440;  // minutes after local midnight, start < end <= 1440
  std::uint64_t rate = 0;    // bytes per second; 0: unlimited

  bool operator==(const rate_window&) const = default;
};

// A moment on the local wall clock.
struct local_time {
  int weekday = 0;  // 0 Monday ... 6 Sunday
  int minute = 0;   // after midnight, 0..1439
  int second = 0;   // 0..59 (60: a leap second)
};
local_time to_local_time(std::chrono::system_clock::time_point t);

// "Mon-Fri", "Sat,Sun", "Mon-Wed,Fri", "Fri-Mon" (wrapping), "daily"; English three-letter names,
// any case. nullopt when the text is none of these.
std::optional<std::uint8_t> parse_days(std::string_view text);
// "HH:MM" from 00:00 to 23:59, or 24:00 when `end`; minutes after midnight.
std::optional<std::uint16_t> parse_clock(std::string_view text, bool end);
std::string days_text(std::uint8_t days);       // "Mon-Fri", "Sat,Sun", "daily"
std::string window_text(const rate_window& w);  // "Mon-Fri 08:00-18:00"

// "Mon-Fri 08:00-18:00": days (parse_days), one blank, start-end (parse_clock), checked by
// check_window; the rate is left 0 for the caller to set. nullopt with the reason in `why`.
std::optional<rate_window> parse_window(std::string_view text, std::string* why = nullptr);
// Why `w` is not a usable window (empty days, start not before end), or nullopt.
std::optional<std::string> check_window(const rate_window& w);
// True when some minute of some day lies in both.
bool overlaps(const rate_window& a, const rate_window& b) noexcept;

// The window holding at `now`; nullptr when none does.
const rate_window* active_window(std::span<const rate_window> windows, local_time now) noexcept;
// How long from `now` until a window starts or ends (the active one may change then); at most a
// week, and a week when there are no windows.
std::chrono::seconds until_next_change(std::span<const rate_window> windows, local_time now) noexcept;

// What a limit is now, for status pages and metrics.
struct rate_in_effect {
  std::uint64_t bytes_per_second = 0;  // 0: unlimited
  std::string window;                  // window_text of the window holding; empty: the base rate

  bool operator==(const rate_in_effect&) const = default;
};
// "2.0 MiB/s (window Mon-Fri 08:00-18:00)", "unlimited", "1.0 MiB/s".
std::string rate_text(const rate_in_effect& rate);

// One limit with its windows: a base rate and the windows that replace it (both 0: unlimited).
class scheduled_rate {
 public:
  scheduled_rate(std::uint64_t base_rate, std::vector<rate_window> windows);

  // The limiter fetches hold; null when the limit is 0 at all times (no limiter is needed).
  const std::shared_ptr<rate_limiter>& limiter() const noexcept { return limiter_; }
  // Switches the limiter to the rate in effect at `now`; returns the window in effect (nullptr:
  // the base rate).
  const rate_window* apply(local_time now) const;
  std::uint64_t rate_at(local_time now) const noexcept;
  rate_in_effect in_effect(local_time now) const;
  std::uint64_t base_rate() const noexcept { return base_rate_; }
  const std::vector<rate_window>& windows() const noexcept { return windows_; }

 private:
  std::uint64_t base_rate_;
  std::vector<rate_window> windows_;
  std::shared_ptr<rate_limiter> limiter_;
};

}  // namespace lanrelay
