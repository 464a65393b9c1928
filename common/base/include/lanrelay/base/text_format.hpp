#pragma once

// How lanrelay shows numbers, times and outside text to people: the status pages of both daemons
// and `lanrelay status`.
//
// Threads: pure functions.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace lanrelay {

// "512 B", "1.5 MiB", ... (binary units, one decimal).
std::string human_bytes(std::uint64_t bytes);

// "42 s", "17 min", "5 h 3 min", "2 d 4 h".
std::string human_duration(std::chrono::seconds s);

// "2026-11-22T07:30:00Z".
std::string format_utc(std::chrono::system_clock::time_point t);

// &, <, >, " and ' as character references.
std::string html_escape(std::string_view text);

// The style sheet both daemons' status pages share (inline in each page, nothing fetched).
extern const std::string_view status_page_style;

}  // namespace lanrelay
