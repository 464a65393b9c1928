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
// A PAC script comes from the network (often plain HTTP), so it runs in a cage:
// - Time: at most pac_time_limit per evaluation (the script's top level, and each FindProxyForURL
//   call), checked between JavaScript instructions (Duktape built from Debian's source with its
//   execution time check on, see agent/CMakeLists.txt) and on every allocation, so that a loop of
//   few instructions that each build a huge string stops too: pac_errc::timeout.
// - Memory: the heap's allocator counts the bytes in use and refuses to pass pac_memory_limit:
//   pac_errc::memory_limit.
// - Process: find_proxy_in_child() compiles and evaluates in a forked child with RLIMIT_AS and
//   RLIMIT_CPU set and a kill timer (pac_child_time_limit); the result comes back over a pipe and is
//   awaited asynchronously, so the caller's I/O thread never runs the script. Whatever happens
//   inside Duktape (a fatal error aborts, a resolver lookup hangs), only the child dies. Daemons
//   use this; pac_script itself is for tests and tools that run one script in the foreground.
// dnsResolve and isResolvable resolve names synchronously (getaddrinfo), as in browsers; in the
// child a lookup that hangs ends with the kill timer.
//
// Threads: a pac_script is used by one thread at a time. Move-only. find_proxy_in_child() may run
// on any executor; it forks, so it must not be called between fork and exec of something else.

#include "lanrelay/base/error.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::proxy_resolution {

enum class pac_errc {
  too_large = 1,     // over max_pac_script_size
  script_error,      // does not compile, or throws while running
  missing_function,  // defines no FindProxyForURL
  bad_result,        // FindProxyForURL returned something other than a string
  out_of_memory,     // Duktape could not create its heap
  timeout,           // ran longer than pac_time_limit
  memory_limit,      // wanted more than pac_memory_limit
  evaluation_failed, // the child process evaluating it died or was killed (find_proxy_in_child)
};

const boost::system::error_category& pac_category() noexcept;

inline boost::system::error_code make_error_code(pac_errc e) noexcept {
  return {static_cast<int>(e), pac_category()};
}

inline constexpr std::size_t max_pac_script_size = std::size_t{1} << 20;
inline constexpr std::chrono::milliseconds pac_time_limit{2'000};
inline constexpr std::size_t pac_memory_limit = std::size_t{64} << 20;
// The child's kill timer: the time limit plus the slack for fork, compile and a name lookup.
inline constexpr std::chrono::milliseconds pac_child_time_limit{5'000};

// When the running evaluation must stop; none while idle.
struct pac_deadline {
  std::optional<std::chrono::steady_clock::time_point> at;

  void start(std::chrono::milliseconds limit = pac_time_limit) {
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

struct pac_outcome {
  result<std::string> answer = make_error_code(pac_errc::evaluation_failed);
  std::string detail;  // the JavaScript exception, or how the child ended
};

// Compiles `source` and calls FindProxyForURL(url, host) in a child process (see the top of this
// file), with the system's environment (system_pac_environment()). Arguments by value: the
// coroutine owns them.
boost::asio::awaitable<pac_outcome> find_proxy_in_child(std::string source, std::string url,
                                                        std::string host);

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

}  // namespace lanrelay::proxy_resolution

template <>
struct boost::system::is_error_code_enum<lanrelay::proxy_resolution::pac_errc> : std::true_type {};
