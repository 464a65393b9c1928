#include "lanrelay/upstream/rate_windows.hpp"

#include "lanrelay/base/text_format.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

#include <fmt/format.h>

namespace lanrelay {
namespace {

constexpr std::array<std::string_view, 7> day_names{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr int minutes_per_day = 1440;
constexpr int minutes_per_week = 7 * minutes_per_day;

std::optional<int> day_index(std::string_view text) {
  if (text.size() != 3) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < day_names.size(); ++i) {
    bool same = true;
    for (std::size_t k = 0; k < 3; ++k) {
      same = same && std::tolower(static_cast<unsigned char>(text[k])) ==
                         std::tolower(static_cast<unsigned char>(day_names[i][k]));
    }
    if (same) {
      return static_cast<int>(i);
    }
  }
  return std::nullopt;
}

std::string_view trim_spaces(std::string_view s) { return trim(s, " "); }

// Minute of the week (Monday 00:00 = 0) of each start and end of `w`'s intervals.
template <typename Each>
void each_interval(const rate_window& w, Each&& each) {
  for (int d = 0; d < 7; ++d) {
    if ((w.days & (1 << d)) != 0) {
      each(d * minutes_per_day + w.start, d * minutes_per_day + w.end);
    }
  }
}

}  // namespace

local_time to_local_time(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&seconds, &tm);
  return {(tm.tm_wday + 6) % 7, tm.tm_hour * 60 + tm.tm_min, tm.tm_sec};
}

std::optional<std::uint8_t> parse_days(std::string_view text) {
  text = trim_spaces(text);
  if (text == "daily" || text == "Daily") {
    return std::uint8_t{0x7f};
  }
  std::uint8_t days = 0;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto part = trim_spaces(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (comma != std::string_view::npos && trim_spaces(text).empty()) {
      return std::nullopt;  // a trailing comma
    }
    const auto dash = part.find('-');
    const auto first = day_index(trim_spaces(part.substr(0, dash)));
    const auto last = dash == std::string_view::npos ? first : day_index(trim_spaces(part.substr(dash + 1)));
    if (!first || !last) {
      return std::nullopt;
    }
    for (int d = *first;; d = (d + 1) % 7) {
      days |= static_cast<std::uint8_t>(1 << d);
      if (d == *last) {
        break;
      }
    }
  }
  if (days == 0) {
    return std::nullopt;
  }
  return days;
}

std::optional<std::uint16_t> parse_clock(std::string_view text, bool end) {
  text = trim_spaces(text);
  if (text.size() != 5 || text[2] != ':' || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      !std::isdigit(static_cast<unsigned char>(text[1])) ||
      !std::isdigit(static_cast<unsigned char>(text[3])) ||
      !std::isdigit(static_cast<unsigned char>(text[4]))) {
    return std::nullopt;
  }
  const int hours = (text[0] - '0') * 10 + (text[1] - '0');
  const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (minutes > 59 || hours > 24 || (hours == 24 && (minutes != 0 || !end))) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(hours * 60 + minutes);
}

std::string days_text(std::uint8_t days) {
  if ((days & 0x7f) == 0x7f) {
    return "daily";
  }
  std::string out;
  for (int d = 0; d < 7;) {
    if ((days & (1 << d)) == 0) {
      ++d;
      continue;
    }
    int last = d;
    while (last + 1 < 7 && (days & (1 << (last + 1))) != 0) {
      ++last;
    }
    out += out.empty() ? "" : ",";
    out += day_names[static_cast<std::size_t>(d)];
    if (last > d) {
      out += last == d + 1 ? "," : "-";
      out += day_names[static_cast<std::size_t>(last)];
    }
    d = last + 1;
  }
  return out;
}

std::string window_text(const rate_window& w) {
  return fmt::format("{} {:02}:{:02}-{:02}:{:02}", days_text(w.days), w.start / 60, w.start % 60,
                     w.end / 60, w.end % 60);
}

std::optional<std::string> check_window(const rate_window& w) {
  if ((w.days & 0x7f) == 0) {
    return "the window names no day";
  }
  if (w.start >= minutes_per_day || w.end > minutes_per_day) {
    return "a time is outside 00:00-24:00";
  }
  if (w.start >= w.end) {
    return fmt::format("start {:02}:{:02} is not before end {:02}:{:02}; a window across midnight "
                       "is written as two (e.g. 22:00-24:00 and 00:00-06:00 of the next days)",
                       w.start / 60, w.start % 60, w.end / 60, w.end % 60);
  }
  return std::nullopt;
}

std::optional<rate_window> parse_window(std::string_view text, std::string* why) {
  text = trim_spaces(text);
  const auto blank = text.rfind(' ');
  const auto dash = blank == std::string_view::npos ? blank : text.find('-', blank);
  const auto fail = [&](std::string reason) -> std::optional<rate_window> {
    if (why != nullptr) {
      *why = std::move(reason);
    }
    return std::nullopt;
  };
  if (dash == std::string_view::npos) {
    return fail("expected days and hours such as \"Mon-Fri 08:00-18:00\"");
  }
  const auto days = parse_days(text.substr(0, blank));
  if (!days) {
    return fail("expected days such as \"Mon-Fri\", \"Sat,Sun\" or \"daily\", got \"" +
                std::string(trim_spaces(text.substr(0, blank))) + "\"");
  }
  const auto start = parse_clock(text.substr(blank + 1, dash - blank - 1), false);
  const auto end = parse_clock(text.substr(dash + 1), true);
  if (!start || !end) {
    return fail("expected hours HH:MM-HH:MM from 00:00 to 24:00, got \"" +
                std::string(text.substr(blank + 1)) + "\"");
  }
  rate_window w{.days = *days, .start = *start, .end = *end};
  if (auto problem = check_window(w)) {
    return fail(std::move(*problem));
  }
  return w;
}

bool overlaps(const rate_window& a, const rate_window& b) noexcept {
  return (a.days & b.days & 0x7f) != 0 && a.start < b.end && b.start < a.end;
}

const rate_window* active_window(std::span<const rate_window> windows, local_time now) noexcept {
  for (const auto& w : windows) {
    if ((w.days & (1 << now.weekday)) != 0 && now.minute >= w.start && now.minute < w.end) {
      return &w;
    }
  }
  return nullptr;
}

std::chrono::seconds until_next_change(std::span<const rate_window> windows,
                                       local_time now) noexcept {
  const int here = now.weekday * minutes_per_day + now.minute;
  int best = minutes_per_week;
  const auto consider = [&](int edge) {
    const int ahead = ((edge - here) % minutes_per_week + minutes_per_week) % minutes_per_week;
    if (ahead > 0 && ahead < best) {
      best = ahead;
    }
  };
  for (const auto& w : windows) {
    each_interval(w, [&](int start, int end) {
      consider(start);
      consider(end);
    });
  }
  return std::chrono::seconds(best * 60 - std::min(now.second, 59));
}

scheduled_rate::scheduled_rate(std::uint64_t base_rate, std::vector<rate_window> windows)
    : base_rate_(base_rate), windows_(std::move(windows)) {
  const bool ever_limited = base_rate_ != 0 || std::any_of(windows_.begin(), windows_.end(),
                                                           [](const rate_window& w) {
                                                             return w.rate != 0;
                                                           });
  if (ever_limited) {
    limiter_ = std::make_shared<rate_limiter>(base_rate_);
  }
}

std::uint64_t scheduled_rate::rate_at(local_time now) const noexcept {
  const auto* w = active_window(windows_, now);
  return w != nullptr ? w->rate : base_rate_;
}

rate_in_effect scheduled_rate::in_effect(local_time now) const {
  const auto* w = active_window(windows_, now);
  return {w != nullptr ? w->rate : base_rate_, w != nullptr ? window_text(*w) : std::string()};
}

const rate_window* scheduled_rate::apply(local_time now) const {
  const auto* w = active_window(windows_, now);
  if (limiter_) {
    limiter_->set_rate(w != nullptr ? w->rate : base_rate_);
  }
  return w;
}

std::string rate_text(const rate_in_effect& rate) {
  std::string out = rate.bytes_per_second == 0 ? "unlimited" : human_bytes(rate.bytes_per_second) + "/s";
  if (!rate.window.empty()) {
    out += " (window " + rate.window + ")";
  }
  return out;
}

}  // namespace lanrelay
