// Bandwidth windows (upstream/rate_windows.hpp): parsing, selection with the time passed in, and
// the limiter switching rates under a running transfer's feet. No clock is read and nothing waits.

#include "lanrelay/upstream/rate_windows.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace lanrelay {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t mib = 1024 * 1024;

rate_window business_hours() {
  return {.days = parse_days("Mon-Fri").value(), .start = 8 * 60, .end = 18 * 60, .rate = 2 * mib};
}

local_time at(int weekday, int hour, int minute, int second = 0) {
  return {weekday, hour * 60 + minute, second};
}

TEST(rate_windows, days_parse_ranges_lists_and_wrapping_ranges) {
  EXPECT_EQ(parse_days("Mon-Fri"), 0x1f);
  EXPECT_EQ(parse_days("sat,SUN"), 0x60);
  EXPECT_EQ(parse_days("Mon-Wed, Fri"), 0x17);
  EXPECT_EQ(parse_days("Fri-Mon"), 0x71);
  EXPECT_EQ(parse_days("daily"), 0x7f);
  EXPECT_EQ(parse_days("Tue"), 0x02);
  for (const char* bad : {"", "Monday", "Mon-", "Mon,", "Mon-Fry", "weekdays", ",Tue"}) {
    EXPECT_FALSE(parse_days(bad)) << bad;
  }
  EXPECT_EQ(days_text(0x1f), "Mon-Fri");
  EXPECT_EQ(days_text(0x60), "Sat,Sun");
  EXPECT_EQ(days_text(0x17), "Mon-Wed,Fri");
  EXPECT_EQ(days_text(0x7f), "daily");
}

TEST(rate_windows, clock_times_are_checked) {
  EXPECT_EQ(parse_clock("08:00", false), 480);
  EXPECT_EQ(parse_clock("23:59", false), 1439);
  EXPECT_EQ(parse_clock("24:00", true), 1440);
  for (const char* bad : {"24:00", "8:00", "08:60", "25:00", "08h00", "", "08:00:00"}) {
    EXPECT_FALSE(parse_clock(bad, false)) << bad;
  }
  EXPECT_FALSE(parse_clock("24:01", true));
  EXPECT_EQ(window_text(business_hours()), "Mon-Fri 08:00-18:00");
}

TEST(rate_windows, bad_and_overlapping_windows_are_named) {
  auto w = business_hours();
  EXPECT_FALSE(check_window(w));
  w.end = w.start;
  EXPECT_NE(check_window(w).value().find("not before end"), std::string::npos);
  w = business_hours();
  w.days = 0;
  EXPECT_TRUE(check_window(w));

  const rate_window evening{.days = 0x1f, .start = 18 * 60, .end = 22 * 60, .rate = 4 * mib};
  EXPECT_FALSE(overlaps(business_hours(), evening));  // 18:00 ends one and starts the other
  const rate_window lunch{.days = 0x04, .start = 12 * 60, .end = 13 * 60, .rate = 0};
  EXPECT_TRUE(overlaps(business_hours(), lunch));
  const rate_window weekend_lunch{.days = 0x60, .start = 12 * 60, .end = 13 * 60, .rate = 0};
  EXPECT_FALSE(overlaps(business_hours(), weekend_lunch));
}

TEST(rate_windows, the_window_in_force_is_chosen_by_weekday_and_minute) {
  const std::vector<rate_window> windows{business_hours()};
  EXPECT_EQ(active_window(windows, at(0, 8, 0)), &windows[0]);   // Monday 08:00: starts
  EXPECT_EQ(active_window(windows, at(4, 17, 59, 59)), &windows[0]);
  EXPECT_EQ(active_window(windows, at(4, 18, 0)), nullptr);      // Friday 18:00: ended
  EXPECT_EQ(active_window(windows, at(2, 7, 59, 59)), nullptr);
  EXPECT_EQ(active_window(windows, at(5, 12, 0)), nullptr);      // Saturday
  EXPECT_EQ(active_window({}, at(0, 12, 0)), nullptr);
}

TEST(rate_windows, the_next_change_is_the_nearest_start_or_end) {
  const std::vector<rate_window> windows{business_hours()};
  EXPECT_EQ(until_next_change(windows, at(0, 7, 0)), 60min);
  EXPECT_EQ(until_next_change(windows, at(0, 7, 59, 30)), 30s);
  EXPECT_EQ(until_next_change(windows, at(0, 8, 0)), 10h);
  EXPECT_EQ(until_next_change(windows, at(0, 18, 0)), 14h);
  // Friday evening: the next change is Monday 08:00.
  EXPECT_EQ(until_next_change(windows, at(4, 18, 0)), 62h);
  EXPECT_EQ(until_next_change({}, at(3, 3, 3)), std::chrono::hours(7 * 24));  // nothing ever changes
}

TEST(rate_windows, a_scheduled_rate_switches_its_limiter) {
  // Unlimited outside business hours: the limiter exists all the same, at rate 0.
  scheduled_rate schedule(0, {business_hours()});
  ASSERT_TRUE(schedule.limiter());
  const auto limiter = schedule.limiter();
  EXPECT_EQ(schedule.apply(at(5, 10, 0)), nullptr);
  EXPECT_EQ(limiter->bytes_per_second(), 0u);
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_EQ(limiter->take(100 * mib, t0), 0ns);  // unlimited: never a wait, never a debt

  EXPECT_EQ(schedule.apply(at(1, 10, 0)), &schedule.windows()[0]);
  EXPECT_EQ(limiter->bytes_per_second(), 2 * mib);
  // The same limiter a running fetch holds now paces it: a full bucket (100 ms of 2 MiB/s),
  // then 2 MiB more costs one second.
  EXPECT_EQ(limiter->take(2 * mib / 10, t0), 0ns);
  EXPECT_EQ(limiter->take(2 * mib, t0), 1s);

  EXPECT_EQ(schedule.apply(at(1, 18, 0)), nullptr);
  EXPECT_EQ(limiter->take(mib, t0), 0ns);  // back to unlimited: the debt is forgiven

  EXPECT_FALSE(scheduled_rate(0, {}).limiter());
  scheduled_rate base_only(mib, {});
  ASSERT_TRUE(base_only.limiter());
  EXPECT_EQ(base_only.rate_at(at(0, 0, 0)), mib);
}

TEST(rate_windows, a_window_is_read_from_days_and_hours) {
  EXPECT_EQ(parse_window("Mon-Fri 08:00-18:00"), (rate_window{.days = 0x1f, .start = 480, .end = 1080}));
  EXPECT_EQ(parse_window("  Mon-Wed, Fri 07:30-24:00 "),
            (rate_window{.days = 0x17, .start = 450, .end = 1440}));
  std::string why;
  EXPECT_FALSE(parse_window("Mon-Fri", &why));
  EXPECT_NE(why.find("expected days and hours"), std::string::npos) << why;
  EXPECT_FALSE(parse_window("Someday 08:00-18:00", &why));
  EXPECT_NE(why.find("expected days"), std::string::npos) << why;
  EXPECT_FALSE(parse_window("daily 08:00-25:00", &why));
  EXPECT_NE(why.find("expected hours"), std::string::npos) << why;
  EXPECT_FALSE(parse_window("daily 18:00-08:00", &why));
  EXPECT_NE(why.find("across midnight"), std::string::npos) << why;
  EXPECT_FALSE(parse_window("daily 08:00"));
}

TEST(rate_windows, the_rate_in_effect_names_its_window) {
  const scheduled_rate schedule(mib, {business_hours()});
  EXPECT_EQ(schedule.in_effect(at(2, 9, 0)), (rate_in_effect{2 * mib, "Mon-Fri 08:00-18:00"}));
  EXPECT_EQ(schedule.in_effect(at(5, 9, 0)), (rate_in_effect{mib, ""}));
}

TEST(rate_windows, local_time_follows_the_time_zone) {
  const char* old = std::getenv("TZ");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "UTC0", 1);
  ::tzset();
  // 2026-12-07 is a Monday.
  const auto monday = std::chrono::sys_days{std::chrono::year{2026} / 12 / 7} + 8h + 30min + 15s;
  auto t = to_local_time(monday);
  EXPECT_EQ(t.weekday, 0);
  EXPECT_EQ(t.minute, 8 * 60 + 30);
  EXPECT_EQ(t.second, 15);
  ::setenv("TZ", "XYZ-2", 1);  // two hours east of UTC
  ::tzset();
  t = to_local_time(monday);
  EXPECT_EQ(t.minute, 10 * 60 + 30);
  if (old != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

}  // namespace
}  // namespace lanrelay
