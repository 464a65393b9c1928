#pragma once

// How lanrelay shows numbers, times and outside text to people: the status pages of both daemons
// and `lanrelay status`; and the small text helpers every layer shares (trim, hex), so that
// there is one of each.
//
// Threads: pure functions.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
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

// Space and tab: HTTP's optional white space (RFC 9110 §5.6.3).
inline constexpr std::string_view http_whitespace = " \t";
// What std::isspace accepts in the C locale.
inline constexpr std::string_view ascii_whitespace = " \t\n\v\f\r";

// `text` without the characters of `blanks` at either end.
std::string_view trim(std::string_view text, std::string_view blanks = http_whitespace) noexcept;

// Lower-case hex: two digits a byte.
std::string hex_encode(std::span<const std::byte> bytes);
void append_hex(std::string& out, std::span<const std::byte> bytes);
void append_hex(std::string& out, unsigned char byte);
// The value of one hex digit, either case; nullopt for any other character.
std::optional<int> hex_digit_value(char c) noexcept;

// The style sheet both daemons' status pages share (inline in each page, nothing fetched).
extern const std::string_view status_page_style;

}  // namespace lanrelay
