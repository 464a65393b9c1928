#pragma once

// Secrets in URLs stay where they were configured: every text that leaves a daemon — a log line,
// a status page, a JSON report, a command's output — passes through redact_urls() first.
//
// What is removed: the userinfo of every URL in the text, that is everything between "://" and
// the last '@' of the authority ("http://user:password@proxy:3128" becomes
// "http://***@proxy:3128"). The user name goes too: a token is often sent as the user name
// ("https://TOKEN@host"), and the host alone is enough to tell which proxy or source is meant.
// The authority ends at the first '/', '?', '#', or a character that can never be part of a URL
// (space, control, '"', '<', '>', '\\', '`', '{', '}', '|', '^'), so a quoted or key=value URL
// inside a log line is found as well as a bare one. "://" with no scheme in front is treated as a
// URL all the same (an administrator's typo must not leak either).
//
// Pure functions, no allocation beyond the result; safe from any thread.

#include <string>
#include <string_view>

namespace lanrelay {

// The text with the userinfo of every URL in it replaced by "***".
std::string redact_urls(std::string_view text);

// True when redact_urls(text) would change something.
bool has_url_credentials(std::string_view text) noexcept;

}  // namespace lanrelay
