#pragma once

// Proxy auto-config (PAC) scripts, evaluated with Duktape (Debian's duktape): the script's
// FindProxyForURL(url, host) with the standard helper functions (isPlainHostName, dnsDomainIs,
// localHostOrDomainIs, isResolvable, isInNet, dnsResolve, myIpAddress, dnsDomainLevels,
// shExpMatch, weekdayRange, dateRange, timeRange), written for lanrelay.
//
// Why not libproxy: Debian 12's libproxy 0.4.18 takes a PAC URL only from its own configuration
// sources (environment or desktop settings), fetches it with its own HTTP code, and evaluates it
// only with a separate JavaScript plugin (WebKit's JavaScriptCore); it cannot be handed a script.
//
// Limits: the script runs on the calling thread, at most kPacTimeLimit per evaluation (running
// the script's top level, and each FindProxyForURL call): a script that loops forever fails with
// pac_errc::timeout. Duktape is built from Debian's source with its execution time check on (see
// agent/CMakeLists.txt). dnsResolve and isResolvable resolve names synchronously (getaddrinfo),
// as in browsers; the limit is checked between JavaScript instructions, so a slow lookup ends
// first.
//
// Threads: a pac_script is used by one thread at a time. Move-only.

#include "lanrelay/common/error.hpp"

#include <boost/system/error_code.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

enum class pac_errc {
  too_large = 1,     // over kMaxPacScriptSize
  script_error,      // does not compile, or throws while running
  missing_function,  // defines no FindProxyForURL
  bad_result,        // FindProxyForURL returned something other than a string
  out_of_memory,     // Duktape could not create its heap
  timeout,           // ran longer than kPacTimeLimit
};

const boost::system::error_category& pac_category() noexcept;

inline boost::system::error_code make_error_code(pac_errc e) noexcept {
  return {static_cast<int>(e), pac_category()};
}

inline constexpr std::size_t kMaxPacScriptSize = std::size_t{1} << 20;
inline constexpr std::chrono::milliseconds kPacTimeLimit{2'000};

// When the running evaluation must stop; none while idle.
struct pac_deadline {
  std::optional<std::chrono::steady_clock::time_point> at;

  void start(std::chrono::milliseconds limit = kPacTimeLimit) {
    at = std::chrono::steady_clock::now() + limit;
  }
  void clear() { at.reset(); }
  bool passed() const { return at && std::chrono::steady_clock::now() >= *at; }
};

// What the script may learn about this machine; defaults use the system resolver and the
// machine's interfaces.
struct pac_environment {
  // The IPv4 address of `host` as text, or nullopt when it does not resolve.
  std::function<std::optional<std::string>(std::string_view host)> resolve;
  // myIpAddress(): an IPv4 address of this machine.
  std::function<std::string()> my_ip_address;
};

pac_environment system_pac_environment();

class pac_script {
 public:
  // Compiles `source`. The error's detail (the JavaScript exception) goes to `detail` when given.
  static result<pac_script> compile(std::string_view source, pac_environment environment,
                                    std::string* detail = nullptr);

  pac_script(pac_script&&) noexcept;
  pac_script& operator=(pac_script&&) noexcept;
  ~pac_script();

  // FindProxyForURL(url, host): "PROXY host:port; DIRECT" and the like.
  result<std::string> find_proxy(std::string_view url, std::string_view host,
                                 std::string* detail = nullptr);

 private:
  struct impl;
  explicit pac_script(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

// One entry of a FindProxyForURL result.
struct pac_route {
  enum class kind { direct, proxy, unsupported };
  kind type = kind::direct;
  std::string proxy_url;  // "http://host:port" for PROXY and HTTP entries
  std::string text;       // the entry as written ("SOCKS5 s:1080"), for reports

  bool operator==(const pac_route&) const = default;
};

// Splits "PROXY a:1; DIRECT" into routes, in order. PROXY and HTTP entries become http://
// proxies; SOCKS, HTTPS and unknown entries are kept as unsupported so that reports can say why
// they were skipped. An empty or blank text gives one DIRECT route.
std::vector<pac_route> parse_pac_result(std::string_view text);

}  // namespace lanrelay::agent

template <>
struct boost::system::is_error_code_enum<lanrelay::agent::pac_errc> : std::true_type {};
